package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
)

// staticPage is the page the start-up and throughput runs replay on: five
// buttons and five inputs, no network after the document.
const staticPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Static</title>
<style> body { font-family: sans-serif; } button, input { display: block; margin: 4px; } </style></head>
<body>
<button id="b0" type="button">B0</button><input id="i0">
<button id="b1" type="button">B1</button><input id="i1">
<button id="b2" type="button">B2</button><input id="i2">
<button id="b3" type="button">B3</button><input id="i3">
<button id="b4" type="button">B4</button><input id="i4">
<p id="count">0</p>
<script>
  let n = 0;
  document.querySelectorAll('button').forEach((b) => b.addEventListener('click', () => { document.querySelector('#count').textContent = String(++n); }));
</script>
</body>
</html>
`

// servePage serves staticPage at /static.html on a loopback port.
func servePage() (url string, closeFn func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(staticPage))
	})}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + "/static.html", func() { _ = srv.Close() }, nil
}

// tenActions is a recording of 10 actions on staticPage: a click on each
// button, each followed by typing into the input below it.
func tenActions(pageURL, id string) []byte {
	var acts []map[string]any
	for i := 0; i < 10; i++ {
		n := i / 2
		sel := func(id string) map[string]any {
			return map[string]any{"id": id, "css": "#" + id, "priority": []string{"id", "css"}}
		}
		a := map[string]any{
			"id": fmt.Sprintf("act_%03d", i+1), "timestamp": 1764645601000 + i*200, "url": pageURL,
		}
		if i%2 == 0 {
			a["type"], a["tagName"], a["selector"] = "click", "button", sel(fmt.Sprintf("b%d", n))
			a["coordinates"] = map[string]any{"x": 5, "y": 5}
			a["coordinatesRelativeTo"], a["button"], a["clickCount"] = "element", "left", 1
		} else {
			a["type"], a["tagName"], a["selector"] = "input", "input", sel(fmt.Sprintf("i%d", n))
			a["value"], a["inputType"], a["simulationType"] = fmt.Sprintf("value %d", i), "text", "setValue"
		}
		acts = append(acts, a)
	}
	rec := map[string]any{
		"id": id, "version": "1.0.0", "testName": "bench: 10 actions on a static page", "url": pageURL,
		"startTime": "2025-12-02T03:20:00.000Z", "endTime": "2025-12-02T03:20:03.000Z",
		"viewport": map[string]int{"width": 1280, "height": 720}, "actions": acts,
		"userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	}
	out, _ := json.Marshal(rec)
	return out
}
