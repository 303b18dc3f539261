package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/omnigate/omnigate/internal/config"
	"github.com/omnigate/omnigate/internal/sim"
	pb "github.com/omnigate/omnigate/proto/omnigate/v1"
)

// TestGRPCHealth: the health service says SERVING while every model has a
// deployment it can use, NOT_SERVING once one has none (its breaker
// opened) and once the server drains, for the server and the service
// alike; Watch says so as it changes.
func TestGRPCHealth(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/v1"
	dead.Close()
	et := tapEngine(t, "instant", sim.Faults{})
	cfg := engineConfig(et)
	cfg.Models = append(cfg.Models, config.Model{Name: "down", Deployments: []config.Deployment{{Name: "gone", Kind: "openai", URL: deadURL}}})
	gw, _ := newTestGateway(t, cfg)
	addr, _ := serveGRPCForTest(t, gw)
	conn := dial(t, addr)
	health := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	check := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status
	}
	for _, s := range []string{"", "omnigate.v1.Omnigate"} {
		if got := check(s); got != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q: %v, want SERVING", s, got)
		}
	}
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service: %v", err)
	}
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{Service: "omnigate.v1.Omnigate"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", r, err)
	}

	client := pb.NewOmnigateClient(conn)
	for checkDown := 0; check("") == healthpb.HealthCheckResponse_SERVING; checkDown++ {
		if checkDown == 10 {
			t.Fatal("ten failed calls and the breaker is still closed")
		}
		client.ChatCompletion(ctx, &pb.ChatCompletionRequest{Model: "down", Messages: []*pb.ChatMessage{say("hi")}})
	}
	if got := check("omnigate.v1.Omnigate"); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("service with a model down: %v", got)
	}
	list, err := health.List(ctx, &healthpb.HealthListRequest{})
	if err != nil || len(list.Statuses) != 2 || list.Statuses[""].Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("list: %v, %v", list, err)
	}
	if r, err := watch.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("watch after the breaker opened: %v, %v", r, err)
	}

	gw2, _ := newTestGateway(t, engineConfig(et))
	addr2, api2 := serveGRPCForTest(t, gw2)
	health2 := healthpb.NewHealthClient(dial(t, addr2))
	watch2, err := health2.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch2.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", r, err)
	}
	api2.Drain()
	if r, err := watch2.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("watch after drain: %v, %v", r, err)
	}
}

// TestGRPCReflection: server reflection lists the services and serves
// the Omnigate service's descriptor, as grpcurl reads them.
func TestGRPCReflection(t *testing.T) {
	gw, _ := newTestGateway(t, engineConfig(tapEngine(t, "instant", sim.Faults{})))
	addr, _ := serveGRPCForTest(t, gw)
	st, err := reflectionpb.NewServerReflectionClient(dial(t, addr)).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"omnigate.v1.Omnigate", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("services %v lack %s", names, want)
		}
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "omnigate.v1.Omnigate"}}); err != nil {
		t.Fatal(err)
	}
	r, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, raw := range r.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(raw, fd); err != nil {
			t.Fatal(err)
		}
		for _, s := range fd.GetService() {
			for _, m := range s.GetMethod() {
				methods = append(methods, m.GetName())
			}
		}
	}
	want := []string{"ChatCompletion", "StreamChatCompletion", "Completion", "Embedding", "ListModels", "SubmitJob", "GetJob", "CancelJob"}
	if !slices.Equal(methods, want) {
		t.Errorf("methods %v, want %v", methods, want)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "omnigate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestGRPCServeTLS: `serve --grpc-addr` listens for gRPC beside HTTP and
// prints where, over TLS when server.grpc_tls names a certificate (a
// plaintext client is refused); "off" turns it off.
func TestGRPCServeTLS(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := writeFile(t, dir, `server: {addr: "127.0.0.1:0", grpc_tls: {cert_file: "`+certFile+`", key_file: "`+keyFile+`"}}`+adminTestModels)
	s := serveArgs(t, "--config", cfg, "--admin-addr", "off", "--grpc-addr", "127.0.0.1:0")
	if s.grpc == "" {
		t.Fatal("no gRPC listener printed")
	}
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	models, err := pb.NewOmnigateClient(conn).ListModels(context.Background(), &pb.ListModelsRequest{})
	if err != nil || len(models.Data) == 0 || models.Data[0].Id != "m" {
		t.Fatalf("ListModels over TLS: %v, %v", models, err)
	}
	_, err = pb.NewOmnigateClient(dial(t, s.grpc)).ListModels(context.Background(), &pb.ListModelsRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a plaintext client: %v, want Unavailable", err)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}

	off := serveArgs(t, "--config", cfg, "--admin-addr", "off", "--grpc-addr", "off")
	if off.grpc != "" {
		t.Errorf("--grpc-addr off: gRPC on %s", off.grpc)
	}
}

// TestGRPCShutdownTellsStreams: a stream still open when the shutdown
// grace runs out ends with Unavailable gateway_shutting_down, as the HTTP
// stream's error event says, and the listener stops.
func TestGRPCShutdownTellsStreams(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{Slow: 10 * time.Millisecond})
	gw, _ := newTestGateway(t, engineConfig(et))
	sc := gw.Config().Server
	sc.GRPCAddr, sc.ShutdownGrace = "127.0.0.1:0", config.Duration(100*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	stop, err := gw.serveGRPC(ctx, sc, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(out.String()), "omnigate: gRPC on "), " ")
	st, err := pb.NewOmnigateClient(dial(t, addr)).StreamChatCompletion(context.Background(), chatReq("hi", 5000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = recvAll(t, st)
	if v := violationOf(err); v.code != codes.Unavailable || v.reason != "gateway_shutting_down" {
		t.Errorf("stream at shutdown: %v (%+v)", err, v)
	}
	stop()
	et.waitIdle(t)
}

// TestGRPCAccessLog: a gRPC call is in the access log as an HTTP request
// is, under the client's request id, with api=grpc.
func TestGRPCAccessLog(t *testing.T) {
	et := tapEngine(t, "instant", sim.Faults{})
	gw, logs := jsonLogGateway(t, engineConfig(et))
	addr, _ := serveGRPCForTest(t, gw)
	ctx := metadataCtx("x-request-id", "grpc-call-1")
	if _, err := pb.NewOmnigateClient(dial(t, addr)).ChatCompletion(ctx, chatReq("hi", 4)); err != nil {
		t.Fatal(err)
	}
	line := awaitAccessLine(t, logs, "the access line", func(l map[string]any) bool { return l["request_id"] == "grpc-call-1" })
	if line["status"] != 200.0 || line["model"] != "m" || line["deployment"] != "up" || line["msg"] != "request" || line["api"] != "grpc" {
		t.Errorf("access line %v", line)
	}
}
