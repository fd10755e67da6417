package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// deviceCache keeps the devices (with their RTSP secrets) in memory, so
// that cameras authenticate while PostgreSQL is down. A serial not in the
// cache is looked up directly (a camera registered a moment ago).
type deviceCache struct {
	db  store
	log *slog.Logger

	mu      sync.RWMutex
	bySerie map[string]index.Device
}

func newDeviceCache(db store, log *slog.Logger) *deviceCache {
	return &deviceCache{db: db, log: log, bySerie: map[string]index.Device{}}
}

func (c *deviceCache) reload(ctx context.Context) error {
	devs, err := c.db.Devices(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]index.Device, len(devs))
	for _, d := range devs {
		m[d.Serial] = d
	}
	c.mu.Lock()
	c.bySerie = m
	c.mu.Unlock()
	return nil
}

func (c *deviceCache) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.reload(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("device list not refreshed; cameras authenticate against the last one", "err", err)
			}
		}
	}
}

// lookup returns the device with a serial, asking the database first (a
// device disabled a moment ago is refused at once) and the cache when the
// database cannot answer. found is false for a device the database does
// not know; err is set when neither could answer.
func (c *deviceCache) lookup(ctx context.Context, serial string) (d index.Device, found bool, err error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d, err = c.db.DeviceBySerial(qctx, serial)
	switch {
	case err == nil:
		c.mu.Lock()
		c.bySerie[serial] = d
		c.mu.Unlock()
		return d, true, nil
	case errors.Is(err, index.ErrNotFound):
		c.mu.Lock()
		delete(c.bySerie, serial)
		c.mu.Unlock()
		return index.Device{}, false, nil
	}
	c.mu.RLock()
	d, ok := c.bySerie[serial]
	c.mu.RUnlock()
	if ok {
		c.log.Warn("database unreachable: device authenticated from the cache", "device", serial, "err", err)
		return d, true, nil
	}
	return index.Device{}, false, err
}
