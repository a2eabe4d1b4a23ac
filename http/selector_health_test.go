package http

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/saveaction/runner/persistence"
)

// The worker stores each action's selector health in the row's metadata
// (actors.toRow); GET /runs/:id/actions shows it per row and GET /runs/:id
// sums it up.
func TestSelectorHealthInRunAndActions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	id := h.createRun(h.uploadRecording(), nil)["id"].(string)
	startRun(t, id)
	runs := &persistence.Runs{DB: testDB()}
	stale := `{"selectorHealth":{"primary":"id","strategy":"css","position":1,"matches":1,"failed":["id (no match)"],"stale":true,"ambiguous":false}}`
	ambiguous := `{"selectorHealth":{"primary":"selectors[0]:css","strategy":"selectors[0]:css","position":0,"matches":3,"failed":[],"stale":false,"ambiguous":true}}`
	gone := `{"selectorHealth":{"primary":"id","strategy":"","position":-1,"matches":0,"failed":["id (no match)"],"stale":true,"ambiguous":false}}`
	for i, meta := range []string{stale, ambiguous, "", gone} {
		row := &persistence.RunAction{ActionIndex: i, Status: persistence.ActionSuccess}
		if meta != "" {
			row.Metadata = json.RawMessage(meta)
		}
		if err := runs.SaveAction(context.Background(), uuid.MustParse(id), 1, row); err != nil {
			t.Fatal(err)
		}
	}
	acts := h.do("GET", "/api/v1/runs/"+id+"/actions", nil).must(t, 200).list()
	first := acts[0].(map[string]any)
	fh, ok := first["selectorHealth"].(map[string]any)
	if !ok || fh["strategy"] != "css" || fh["position"] != 1.0 || fh["stale"] != true || fh["failed"].([]any)[0] != "id (no match)" {
		t.Errorf("first action %v", first)
	}
	for _, i := range []int{2, 4} { // no metadata; never ran
		if v, present := acts[i].(map[string]any)["selectorHealth"]; !present || v != nil {
			t.Errorf("action %d selectorHealth %v (present %v), want null", i, v, present)
		}
	}

	run := h.do("GET", "/api/v1/runs/"+id, nil).must(t, 200).data()
	sum, ok := run["selectorHealth"].(map[string]any)
	if !ok {
		t.Fatalf("run %v", run)
	}
	if sum["located"] != 3.0 || sum["primary"] != 1.0 || sum["fallback"] != 1.0 || sum["notFound"] != 1.0 {
		t.Errorf("summary %v", sum)
	}
	staleNotes := sum["stale"].([]any)
	if len(staleNotes) != 2 {
		t.Fatalf("stale %v", staleNotes)
	}
	n := staleNotes[0].(map[string]any)
	if n["actionId"] != first["actionId"] || n["index"] != 0.0 || n["primary"] != "id" || n["strategy"] != "css" {
		t.Errorf("stale note %v", n)
	}
	if amb := sum["ambiguous"].([]any); len(amb) != 1 || amb[0].(map[string]any)["index"] != 1.0 {
		t.Errorf("ambiguous %v", amb)
	}
	// Listing runs does not read every run's actions.
	for _, r := range h.do("GET", "/api/v1/runs", nil).must(t, 200).list() {
		if _, present := r.(map[string]any)["selectorHealth"]; present {
			t.Errorf("listed run has selectorHealth: %v", r)
		}
	}
}

// TestOpenAPIDocumentsRunViews fails when a run or action field is added
// to the views without its schema property.
func TestOpenAPIDocumentsRunViews(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	b, err := buildOpenAPI("test")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for schema, v := range map[string]any{"Run": runView{}, "RunAction": actionView{}, "SelectorHealthSummary": healthSummaryView{},
		"SelectorHealthNote": healthNoteView{}} {
		props := doc.Components.Schemas[schema].Properties
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if _, ok := props[name]; !ok {
				t.Errorf("schema %s lacks %q", schema, name)
			}
		}
	}
}
