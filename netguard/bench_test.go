package netguard

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkRequest fetches a small page over keep-alive connections,
// directly and through the proxy, side by side: the difference is what
// the proxy adds to each plain-HTTP request (policy check, resolution of
// the literal address, one more hop on loopback).
func BenchmarkRequest(b *testing.B) {
	up := upstreamB(b)
	x, err := Listen(&Policy{BlockedNetworks: DefaultBlockedNetworks()}, Hooks{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	pu, _ := url.Parse(x.URL())
	for _, c := range []struct {
		name  string
		proxy func(*http.Request) (*url.URL, error)
	}{{"direct", nil}, {"proxy", http.ProxyURL(pu)}} {
		b.Run(c.name, func(b *testing.B) {
			tr := &http.Transport{Proxy: c.proxy}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			for i := 0; i < b.N; i++ {
				resp, err := client.Get(up)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func upstreamB(b *testing.B) string {
	s := &http.Server{Handler: text("a small page of text")}
	ln, err := listenLoopback()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	b.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String() + "/"
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
