package cache

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

func TestFlightFollowers(t *testing.T) {
	var fs Flights
	key := FlightKey{Key: k("a").Key, Stream: true}
	lead, leader := fs.Join(key)
	if !leader {
		t.Fatal("the first request does not lead")
	}
	lead.Answer(200, "text/event-stream")
	lead.Write([]byte("data: 1\n\n"))
	const n = 8
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		f, leader := fs.Join(key)
		if leader || f != lead {
			t.Fatal("a request in the same flight leads")
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status, ct, ok, err := f.Wait(context.Background())
			if !ok || err != nil || status != 200 || ct != "text/event-stream" {
				t.Errorf("Wait: %d %q %v %v", status, ct, ok, err)
				return
			}
			b, err := io.ReadAll(f.Reader(context.Background()))
			if err != nil {
				t.Errorf("read: %v", err)
			}
			got[i] = string(b)
		}(i)
	}
	time.Sleep(10 * time.Millisecond) // some followers read the first piece, then wait
	lead.Write([]byte("data: 2\n\n"))
	lead.Write([]byte("data: [DONE]\n\n"))
	lead.Finish(nil)
	wg.Wait()
	for i, g := range got {
		if g != "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n" {
			t.Errorf("follower %d read %q", i, g)
		}
	}
	if lead.Followers() != n {
		t.Errorf("%d followers, want %d", lead.Followers(), n)
	}
	if _, leader := fs.Join(key); !leader || fs.InFlight() != 1 {
		t.Error("a request after the flight ended does not lead a new one")
	}
}

func TestFlightAbortAndCut(t *testing.T) {
	var fs Flights
	key := FlightKey{Key: k("a").Key}
	lead, _ := fs.Join(key)
	f, _ := fs.Join(key)
	lead.Abort()
	if _, _, ok, err := f.Wait(context.Background()); ok || err != nil {
		t.Errorf("after an abort: ok %v, err %v; want to go upstream", ok, err)
	}

	lead, _ = fs.Join(key)
	f, _ = fs.Join(key)
	lead.Answer(200, "text/event-stream")
	lead.Write([]byte("data: 1\n\n"))
	cut := errors.New("upstream cut")
	lead.Finish(cut)
	b, err := io.ReadAll(f.Reader(context.Background()))
	if string(b) != "data: 1\n\n" || !errors.Is(err, cut) {
		t.Errorf("a cut flight: %q, %v", b, err)
	}
}

func TestFlightFollowerDeadline(t *testing.T) {
	var fs Flights
	key := FlightKey{Key: k("a").Key}
	lead, _ := fs.Join(key)
	defer lead.Finish(nil)
	f, _ := fs.Join(key)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, ok, err := f.Wait(ctx); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past the deadline: %v %v", ok, err)
	}
	lead.Answer(200, "application/json")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := io.ReadAll(f.Reader(ctx2)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read past the deadline: %v", err)
	}
}
