package main

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
)

func sorted(s []string) []string { slices.Sort(s); return s }

func TestReadSSE(t *testing.T) {
	in := "retry: 2000\n: run x\n\n" +
		"id: 1-0\nevent: run.queued\ndata: {}\n\n" +
		": heartbeat\n\n" +
		"id: 2-0\r\nevent: run.started\r\ndata: {\"attempt\":1,\r\ndata: \"worker\":\"w\"}\r\n\r\n" +
		"id: 3-0\nevent: run.finished\ndata: {\"status\":\"passed\"}\n\n" +
		"id: 4-0\nevent: never.read\ndata: {}\n\n"
	var got []sseEvent
	err := readSSE(strings.NewReader(in), func(ev sseEvent) bool {
		got = append(got, ev)
		return ev.Name != "run.finished"
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []sseEvent{
		{ID: "1-0", Name: "run.queued", Data: []byte("{}")},
		{ID: "2-0", Name: "run.started", Data: []byte("{\"attempt\":1,\n\"worker\":\"w\"}")},
		{ID: "3-0", Name: "run.finished", Data: []byte(`{"status":"passed"}`)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events: %+v", len(got), got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Name != want[i].Name || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("event %d = %+v %q, want %+v %q", i, got[i], got[i].Data, want[i], want[i].Data)
		}
	}
}

func TestUpdateBody(t *testing.T) {
	for _, c := range []struct{ in, wantKeys string }{
		{`{"id":"rec_1","actions":[]}`, "data"},                          // a bare recording becomes data
		{`{"name":"n","data":{"id":"rec_1","actions":[]}}`, "data,name"}, // a wrapper goes as it is
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(updateBody([]byte(c.in)), &m); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		if strings.Join(sorted(keys), ",") != c.wantKeys {
			t.Errorf("updateBody(%s) keys %v, want %s", c.in, keys, c.wantKeys)
		}
	}
}

func TestSubmitUsageErrorsExit2(t *testing.T) {
	t.Setenv("SAVEACTION_TOKEN", "")
	for _, args := range [][]string{
		{},         // no files
		{"x.json"}, // no token
		{"--token", "t", "--timing-mode", "warp", "x.json"}, // bad timing mode
		{"--bogus"},
	} {
		if code := submitCmd(t.Context(), args, io.Discard, io.Discard); code != exitUsage {
			t.Errorf("submit %v exited %d, want %d", args, code, exitUsage)
		}
	}
}
