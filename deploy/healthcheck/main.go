// Command healthcheck is the health probe of the activityd container
// image, whose distroless base has no shell, curl or wget:
//
//	healthcheck URL...
//
// It GETs each URL in turn and exits 0 when every answer is a 2xx, 1 at
// the first that is not (or does not come within 3 seconds), 2 on a usage
// error. It ignores HTTP_PROXY and the like: the URLs are the
// container's own.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(urls []string, stderr io.Writer) int {
	if len(urls) == 0 {
		fmt.Fprintln(stderr, "usage: healthcheck URL...")
		return 2
	}
	client := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	for _, u := range urls {
		res, err := client.Get(u)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode > 299 {
			fmt.Fprintf(stderr, "%s: %s\n", u, res.Status)
			return 1
		}
	}
	return 0
}
