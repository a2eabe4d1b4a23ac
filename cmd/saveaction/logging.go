package main

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Keys of the worker log line (RUNS_API.md, Logging): slog's own time, msg
// and level keys are renamed to these, in both formats.
const (
	logKeyTimestamp = "timestamp"
	logKeyMessage   = "message"
	logKeyLevel     = "level"
)

// logTimeLayout is the line's timestamp: UTC, milliseconds, as in the seed
// ("2026-01-31T07:17:43.270Z").
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// seedLogKeys is the handlers' ReplaceAttr: timestamp, message and a lower
// case level ("info") in place of slog's time, msg and "INFO".
func seedLogKeys(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if t, ok := a.Value.Any().(time.Time); ok {
			return slog.String(logKeyTimestamp, t.UTC().Format(logTimeLayout))
		}
		a.Key = logKeyTimestamp
	case slog.MessageKey:
		a.Key = logKeyMessage
	case slog.LevelKey:
		return slog.String(logKeyLevel, strings.ToLower(a.Value.String()))
	}
	return a
}

// defaultAttrHandler adds attr to every record that does not carry its key
// already (from With or the call): a worker's lines all name the worker,
// and a line that names it itself (the run lines) does so once.
type defaultAttrHandler struct {
	slog.Handler
	attr slog.Attr
	has  bool // attr's key was given by WithAttrs, or a group was opened
}

func withDefaultAttr(h slog.Handler, attr slog.Attr) slog.Handler {
	return &defaultAttrHandler{Handler: h, attr: attr}
}

func (h *defaultAttrHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.has {
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = a.Key == h.attr.Key
			return !found
		})
		if !found {
			r = r.Clone()
			r.AddAttrs(h.attr)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *defaultAttrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range as {
		has = has || a.Key == h.attr.Key
	}
	return &defaultAttrHandler{Handler: h.Handler.WithAttrs(as), attr: h.attr, has: has}
}

// WithGroup: attributes after a group are nested, so the default is added
// before it.
func (h *defaultAttrHandler) WithGroup(name string) slog.Handler {
	inner := h.Handler
	if !h.has {
		inner = inner.WithAttrs([]slog.Attr{h.attr})
	}
	return &defaultAttrHandler{Handler: inner.WithGroup(name), attr: h.attr, has: true}
}
