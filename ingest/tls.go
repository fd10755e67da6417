package ingest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certFiles serves the RTSPS certificate from its files and picks up a
// renewed one (files replaced on disk) without a restart: the files are
// looked at again at most every certCheckEvery; a renewal that does not
// load keeps the previous certificate and is logged.
type certFiles struct {
	cert, key string
	log       *slog.Logger

	mu        sync.Mutex
	current   *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	nextCheck time.Time
}

const certCheckEvery = 10 * time.Second

func newTLSConfig(cert, key string, log *slog.Logger) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, errors.New("both a certificate file and a key file are needed")
	}
	cf := &certFiles{cert: cert, key: key, log: log}
	if err := cf.load(); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cf.get}, nil
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// load reads the pair; with cf.mu held or before cf is shared.
func (cf *certFiles) load() error {
	cm, err := modTime(cf.cert)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	km, err := modTime(cf.key)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	c, err := tls.LoadX509KeyPair(cf.cert, cf.key)
	if err != nil {
		return fmt.Errorf("certificate %s and key %s: %w", cf.cert, cf.key, err)
	}
	cf.current, cf.certMod, cf.keyMod = &c, cm, km
	cf.nextCheck = time.Now().Add(certCheckEvery)
	return nil
}

func (cf *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if now := time.Now(); now.After(cf.nextCheck) {
		cf.nextCheck = now.Add(certCheckEvery)
		cm, err1 := modTime(cf.cert)
		km, err2 := modTime(cf.key)
		if err1 == nil && err2 == nil && (!cm.Equal(cf.certMod) || !km.Equal(cf.keyMod)) {
			if err := cf.load(); err != nil {
				cf.log.Error("RTSPS certificate changed on disk but does not load: keeping the previous one", "err", err)
			} else {
				cf.log.Info("RTSPS certificate reloaded", "cert", cf.cert)
			}
		}
	}
	return cf.current, nil
}
