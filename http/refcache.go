package http

import (
	"sync"

	"github.com/google/uuid"

	"github.com/saveaction/runner/persistence"
)

// refCacheSize bounds the recordings whose action references an API node
// keeps.
const refCacheSize = 4096

// recordingRefs is what creating a run needs from a recording's data: the
// pending rows' action references and the variable names the run may set.
type recordingRefs struct {
	version int
	refs    []persistence.ActionRef
	vars    []string
}

// refCache keeps, per recording, the references of the version last read.
// Parsing the recording's data was the largest cost of POST /runs (≈ 40 %
// of the API's CPU under load); a version's data never changes (an update
// makes a new version), so an entry is right for as long as the version
// read with the run is the one cached. Entries are shared read-only.
type refCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]recordingRefs
}

func newRefCache() *refCache { return &refCache{m: map[uuid.UUID]recordingRefs{}} }

// get returns the references of version of recording id, if kept.
func (c *refCache) get(id uuid.UUID, version int) (recordingRefs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.version != version {
		return recordingRefs{}, false
	}
	return e, true
}

// put keeps e for recording id, dropping an arbitrary entry when full.
func (c *refCache) put(id uuid.UUID, e recordingRefs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; !ok && len(c.m) >= refCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = e
}
