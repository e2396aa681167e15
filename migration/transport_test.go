package migration

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysched/anysched/tls13"
)

// get runs one GET through tr and returns the node that answered and
// the connection's info.
func get(t testing.TB, tr *Transport, addr string) (string, ConnInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("body: %v", err)
	}
	info, ok := ResponseConnInfo(resp)
	if !ok {
		t.Fatal("no ConnInfo on the response")
	}
	return resp.Header.Get("Anysched-Node"), info
}

// A request loop in background mode while the connection moves twice
// (VIP → own unicast on the token, then unicast → sibling on
// re-target + migrate_notify): no request is lost, and requests are
// served before and after each move.
func TestTransportBackgroundRequestLoopLosesNothing(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	replay := NewMemoryReplayStore(1024)
	a := startNode(t, nodeOpts{name: "a", keys: keys, replay: replay})
	b := startNode(t, nodeOpts{name: "b", keys: keys, replay: replay})
	tr := &Transport{Dialer: newDialer(t, PolicyBackground)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	var sent, failed atomic.Int64
	var mu sync.Mutex
	where := map[string]int{} // "a anycast", "a unicast", "b unicast"
	var order []string
	seen := make(chan string, 1<<16)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			resp, err := client.Get("https://" + a.vipAddr() + "/")
			if err != nil {
				failed.Add(1)
				t.Errorf("request %d: %v", sent.Load(), err)
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				failed.Add(1)
				t.Errorf("body: %v", err)
				return
			}
			k := strings.TrimSuffix(strings.TrimSuffix(string(body), " resumed=true"), " resumed=false")
			mu.Lock()
			where[k]++
			if len(order) == 0 || order[len(order)-1] != k {
				order = append(order, k)
			}
			mu.Unlock()
			seen <- k
		}
	}()
	waitSeen := func(want string) {
		t.Helper()
		deadline := time.After(waitLimit)
		for {
			select {
			case k := <-seen:
				if k == want {
					return
				}
			case <-done:
				t.Fatalf("request loop ended before %q", want)
			case <-deadline:
				t.Fatalf("no request reached %q", want)
			}
		}
	}
	waitSeen("a unicast")
	a.waitClosed(t, KindAnycast) // make-before-break: the VIP conn closes after the switch
	if n := a.srv.MigrateAll(addrOf(b.uni)); n != 1 {
		t.Errorf("MigrateAll told %d connections, want 1", n)
	}
	waitSeen("b unicast")
	// A few more after the second move.
	for i := 0; i < 3; i++ {
		waitSeen("b unicast")
	}
	close(stop)
	<-done

	served := a.served[KindAnycast].Load() + a.served[KindUnicast].Load() + b.served[KindUnicast].Load()
	if failed.Load() != 0 || served != sent.Load() {
		t.Fatalf("sent %d, served %d, failed %d", sent.Load(), served, failed.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("requests by place: %v, in order %v", where, order)
	if where["a anycast"] == 0 || where["a unicast"] == 0 || where["b unicast"] < 4 {
		t.Errorf("requests by place %v: want some before and after each move", where)
	}
	if strings.Join(order, ",") != "a anycast,a unicast,b unicast" {
		t.Errorf("conn moved %v, want VIP → a → b", order)
	}
	if n := tr.Dials(); n != 1 {
		t.Errorf("Dials = %d: the moves must not count as dials", n)
	}
}

func TestTransportRejectsNonHTTPS(t *testing.T) {
	tr := &Transport{Dialer: newDialer(t, PolicyNever)}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http URL: %v", err)
	}
	if _, err := (&Transport{}).RoundTrip(&http.Request{URL: req.URL}); err == nil {
		t.Fatal("nil Dialer accepted")
	}
}

// A pooled connection the server closed while idle is not used again;
// the request goes out on a fresh one (nothing of it was written).
func TestTransportReplacesDeadIdleConn(t *testing.T) {
	node := startNode(t, nodeOpts{})
	tr := &Transport{Dialer: newDialer(t, PolicyRendezvous)}
	defer tr.CloseIdleConnections()
	if n, _ := get(t, tr, node.vipAddr()); n != "node" {
		t.Fatalf("node %q", n)
	}
	node.waitClosed(t, KindAnycast)
	for _, sc := range node.srv.snapshot() {
		sc.Close()
	}
	node.waitClosed(t, KindUnicast)
	if n, info := get(t, tr, node.vipAddr()); n != "node" || !info.Migrated {
		t.Fatalf("after the server closed the idle conn: node %q info %+v", n, info)
	}
	if n := tr.Dials(); n != 2 {
		t.Fatalf("Dials = %d after the idle conn was replaced, want 2", n)
	}
}

// A reused connection the server drops after reading a request (no
// response byte): an idempotent GET is retried on a fresh connection, a
// POST whose bytes all went out is not (it may have run).
func TestTransportRetryRules(t *testing.T) {
	keys, _ := tls13.NewRandomTicketKeys()
	uni := listen(t)
	srv, err := NewServer(ServerConfig{
		TLS:     &tls13.Config{Certificates: []tls.Certificate{getPKI(t).cert}, TicketKeys: keys},
		Unicast: addrOf(uni),
	})
	if err != nil {
		t.Fatal(err)
	}
	type connCount struct{ n atomic.Int64 }
	var served atomic.Int64
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cc := r.Context().Value(ctxKey{}).(*connCount)
			if cc.n.Add(1) == 2 {
				// Second request on this connection: drop it unanswered.
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
			served.Add(1)
			io.WriteString(w, "ok")
		}),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, &connCount{})
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go hs.Serve(srv.Listen(uni, KindUnicast))
	t.Cleanup(func() { hs.Close() })

	tr := &Transport{Dialer: newDialer(t, PolicyNever)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "https://" + uni.Addr().String() + "/"
	do := func(method string, body io.Reader) error {
		req, _ := http.NewRequest(method, url, body)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			t.Errorf("%s body %q", method, b)
		}
		return err
	}
	if err := do(http.MethodGet, nil); err != nil {
		t.Fatal(err)
	}
	if err := do(http.MethodGet, nil); err != nil {
		t.Fatalf("idempotent GET on a dropped reused conn was not retried: %v", err)
	}
	if served.Load() != 2 {
		t.Fatalf("served %d", served.Load())
	}
	if err := do(http.MethodPost, io.MultiReader(strings.NewReader("payload"))); err == nil {
		t.Fatal("a POST that was fully written was retried on another conn")
	}
	if served.Load() != 2 {
		t.Errorf("served %d after the dropped POST", served.Load())
	}
}
