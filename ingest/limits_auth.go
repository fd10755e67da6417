package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/bwcplatform/bwc/storage/index"
)

// authThrottle counts failed authentications per remote address and per
// device serial in fixed windows. Past the limit, attempts from that address
// or for that device are refused until the window ends, before any device
// lookup or credential check (and connections from a throttled address are
// closed at accept). A device's limit also holds against an attacker who
// spreads guesses over many addresses; its price is that such an attacker
// can keep a camera out for the window, which the metric and log show.
type authThrottle struct {
	perAddr   int // failures allowed per window and address; 0: no limit
	perDevice int // failures allowed per window and device; 0: no limit
	window    time.Duration
	addrs     *windowCounter
	devices   *windowCounter

	goodMu sync.Mutex
	good   map[string][]string // device serial -> addresses it authenticated from, most recent first
}

// maxThrottleKeys bounds each counter's memory: an attacker cycling
// addresses or serials cannot grow it beyond this many entries.
const maxThrottleKeys = 65536

func newAuthThrottle(perAddr, perDevice int, window time.Duration) *authThrottle {
	return &authThrottle{perAddr: perAddr, perDevice: perDevice, window: window,
		addrs: newWindowCounter(window, maxThrottleKeys, perAddr), devices: newWindowCounter(window, maxThrottleKeys, perDevice)}
}

func (t *authThrottle) addrBlocked(key string, now time.Time) bool {
	return t.perAddr > 0 && t.addrs.get(key, now) >= t.perAddr
}

// deviceBlocked: the device failed too often in the window, and the
// attempt does not come from an address the device authenticated from
// before (a camera reconnecting from where it was is not locked out by
// someone spraying guesses for its serial from elsewhere; an attacker
// cannot send from that address unless behind the same NAT, where the
// per-address limit still holds).
func (t *authThrottle) deviceBlocked(serial, addr string, now time.Time) bool {
	return t.perDevice > 0 && t.devices.get(serial, now) >= t.perDevice && !t.knownGood(serial, addr)
}

// maxGoodAddrs is how many addresses each device is remembered at.
const maxGoodAddrs = 4

func (t *authThrottle) knownGood(serial, addr string) bool {
	t.goodMu.Lock()
	defer t.goodMu.Unlock()
	for _, a := range t.good[serial] {
		if a == addr {
			return true
		}
	}
	return false
}

// succeeded remembers the address a device authenticated from (the last
// few per device, and at most maxThrottleKeys devices).
func (t *authThrottle) succeeded(addr, serial string) {
	t.goodMu.Lock()
	defer t.goodMu.Unlock()
	if t.good == nil {
		t.good = map[string][]string{}
	}
	as, ok := t.good[serial]
	for i, a := range as {
		if a == addr {
			copy(as[1:i+1], as[:i]) // most recent first
			as[0] = addr
			return
		}
	}
	if !ok && len(t.good) >= maxThrottleKeys {
		for k := range t.good { // an arbitrary device is forgotten
			delete(t.good, k)
			break
		}
	}
	if len(as) >= maxGoodAddrs {
		as = as[:maxGoodAddrs-1]
	}
	t.good[serial] = append([]string{addr}, as...)
}

// failed records a failed authentication.
func (t *authThrottle) failed(addr, serial string, now time.Time) {
	if t.perAddr > 0 {
		t.addrs.add(addr, now)
	}
	if t.perDevice > 0 && serial != "" {
		t.devices.add(serial, now)
	}
}

// windowCounter counts events per key in fixed windows, with at most max
// keys: when full, expired windows are dropped, and if none has expired the
// oldest window goes (the keys most recently seen stay).
type windowCounter struct {
	window time.Duration
	max    int
	keep   int // entries counting this many are evicted last

	mu sync.Mutex
	m  map[string]*windowCount
}

type windowCount struct {
	start time.Time
	n     int
}

func newWindowCounter(window time.Duration, max, keep int) *windowCounter {
	return &windowCounter{window: window, max: max, keep: keep, m: map[string]*windowCount{}}
}

func (w *windowCounter) get(key string, now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.m[key]
	if !ok || now.Sub(c.start) >= w.window {
		return 0
	}
	return c.n
}

func (w *windowCounter) add(key string, now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.m[key]
	if ok && now.Sub(c.start) < w.window {
		c.n++
		return c.n
	}
	if !ok && len(w.m) >= w.max {
		w.evictLocked(now)
	}
	w.m[key] = &windowCount{start: now, n: 1}
	return 1
}

// evictLocked makes room: every expired entry goes; when none has expired,
// entries below keep (not throttled) go before throttled ones, so that an
// attacker cycling addresses cannot free a throttled address by filling
// the map. At least a sixteenth of the map is freed, so evictions are rare.
func (w *windowCounter) evictLocked(now time.Time) {
	for k, c := range w.m {
		if now.Sub(c.start) >= w.window {
			delete(w.m, k)
		}
	}
	n := w.max/16 + 1 - (w.max - len(w.m))
	for pass := 0; pass < 2 && n > 0; pass++ {
		for k, c := range w.m {
			if n <= 0 {
				break
			}
			if pass == 0 && w.keep > 0 && c.n >= w.keep {
				continue
			}
			delete(w.m, k)
			n--
		}
	}
}

func (w *windowCounter) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// missReloader bounds what ANNOUNCEs for serials the device cache does not
// hold can cost: instead of one database query per request (an attacker
// cycling made-up serials), the whole device list is reloaded, at most once
// per interval, and every miss meanwhile is answered from the cache. A
// camera registered a moment ago is found by the next reload.
type missReloader struct {
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	lastErr error
}

// cachedDevice returns a device from the cache only.
func (c *deviceCache) cachedDevice(serial string) (index.Device, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d, ok := c.bySerie[serial]
	return d, ok
}

// deviceForAuth returns the device whose secret a request is checked
// against: from the cache, or after a (rate-limited) reload for a serial
// the cache lacks. err is set when the device could not be looked up at all
// (PostgreSQL down and the device never seen).
func (s *Server) deviceForAuth(ctx context.Context, serial string) (index.Device, bool, error) {
	if d, ok := s.devices.cachedDevice(serial); ok {
		return d, true, nil
	}
	m := s.misses
	m.mu.Lock()
	if time.Since(m.last) >= m.every {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m.lastErr = s.devices.reload(qctx)
		cancel()
		m.last = time.Now()
	}
	err := m.lastErr
	m.mu.Unlock()
	if d, ok := s.devices.cachedDevice(serial); ok {
		return d, true, nil
	}
	return index.Device{}, false, err
}
