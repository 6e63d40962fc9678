package main

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/streamroot/streamroot/pkg/httpsrc"
)

// httpOptions is how a command reads an image server: through the
// environment's proxy, giving up after stall without progress, or after
// e.stall when a test shortens it.
func (e *env) httpOptions(stall time.Duration) httpsrc.Options {
	if e.stall > 0 {
		stall = e.stall
	}
	return httpsrc.Options{Stall: stall, Proxy: http.ProxyFromEnvironment}
}

// httpsOptions is httpOptions with the -cacert and -insecure flags of
// the commands that read a URL the user names (inspect, verify).
func (e *env) httpsOptions(stall time.Duration, cacert string, insecure bool) (httpsrc.Options, error) {
	ho := e.httpOptions(stall)
	ho.InsecureSkipVerify = insecure
	if cacert != "" {
		pool, err := loadCAs(cacert)
		if err != nil {
			return httpsrc.Options{}, err
		}
		ho.RootCAs = pool
	}
	return ho, nil
}

// loadCAs reads a PEM bundle for -cacert.
func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, withHint(fmt.Errorf("-cacert %s: no PEM certificate in it", file), "give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}
