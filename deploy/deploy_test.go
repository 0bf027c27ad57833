// Package deploy_test checks the deployment in this directory: the
// compose file, Prometheus, Tempo and Grafana configuration and the
// dashboard agree with each other and with what activityd exports, and
// the real tools (promtool, docker-compose) accept them. There is no
// Docker engine in CI: nothing here starts a container.
//
// test/e2e/dashboard_test.go checks the dashboard against a running
// activityd.
package deploy_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	// A fork of gopkg.in/yaml.v3 (same API) that go.mod already requires,
	// for kin-openapi.
	"github.com/activityd/activityd/test/promql"
	yaml "github.com/oasdiff/yaml3"
)

// The files under test, relative to this directory (compose.yaml's too).
const (
	composeFile     = "compose.yaml"
	prometheusFile  = "prometheus/prometheus.yml"
	tempoFile       = "tempo/tempo.yaml"
	datasourcesFile = "grafana/provisioning/datasources/datasources.yaml"
	dashboardsFile  = "grafana/provisioning/dashboards/dashboards.yaml"
	dashboardFile   = "grafana/dashboards/activityd.json"
)

// activitydServices are the compose services running the activityd image,
// with their subcommand.
var activitydServices = []string{"serve", "worker", "scheduler"}

// exported are the metric families activityd exports (README,
// Monitoring), with their labels; the dashboard may use these and no
// other activityd_ metric. Histograms are named without _bucket, _sum and
// _count.
var exported = map[string]struct {
	typ    string
	labels []string
}{
	"activityd_http_requests_total":                       {"counter", []string{"route", "method", "status"}},
	"activityd_http_requests_errors_total":                {"counter", []string{"route", "method", "status"}},
	"activityd_http_request_duration_seconds":             {"histogram", []string{"route", "method", "status"}},
	"activityd_events_recorded_total":                     {"counter", []string{"action"}},
	"activityd_event_transitions_total":                   {"counter", []string{"from", "to", "result"}},
	"activityd_cache_requests_total":                      {"counter", []string{"view", "result"}},
	"activityd_cache_errors_total":                        {"counter", []string{"op"}},
	"activityd_count_runs_total":                          {"counter", []string{"result"}},
	"activityd_count_run_duration_seconds":                {"histogram", []string{"result"}},
	"activityd_count_windows_computed_total":              {"counter", nil},
	"activityd_count_lag_seconds":                         {"gauge", nil},
	"activityd_checkpoint_age_seconds":                    {"gauge", nil},
	"activityd_db_connections":                            {"gauge", []string{"pool", "state"}},
	"activityd_db_connections_max":                        {"gauge", []string{"pool"}},
	"activityd_db_connection_waits_total":                 {"counter", []string{"pool"}},
	"activityd_db_connection_wait_duration_seconds_total": {"counter", []string{"pool"}},
}

// --- the files, decoded ----------------------------------------------------

type service struct {
	Image string
	Build *struct {
		Context    string
		Dockerfile string
	}
	Command     []string
	Environment map[string]string
	Ports       []string
	Volumes     []string
	Healthcheck *struct{ Test []string }
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
}

type compose struct {
	Services map[string]service
	Volumes  map[string]any
}

type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type tempoConfig struct {
	Server struct {
		HTTPListenPort int `yaml:"http_listen_port"`
	}
	Distributor struct {
		Receivers struct {
			OTLP struct {
				Protocols struct {
					HTTP, GRPC *struct{ Endpoint string }
				}
			}
		}
	}
	MetricsGenerator struct {
		Storage struct {
			Path        string
			RemoteWrite []struct{ URL string } `yaml:"remote_write"`
		}
	} `yaml:"metrics_generator"`
	Storage struct {
		Trace struct {
			Backend string
			WAL     struct{ Path string }
			Local   struct{ Path string }
		}
	}
	Overrides struct {
		Defaults struct {
			MetricsGenerator struct {
				Processors []string
			} `yaml:"metrics_generator"`
		}
	}
}

type datasource struct {
	Name, Type, UID, URL string
	JSONData             struct {
		ExemplarTraceIDDestinations []struct {
			Name          string
			DatasourceUID string `yaml:"datasourceUid"`
		} `yaml:"exemplarTraceIdDestinations"`
		TracesToMetrics *struct {
			DatasourceUID string `yaml:"datasourceUid"`
			Tags          []struct{ Key, Value string }
			Queries       []struct{ Name, Query string }
		} `yaml:"tracesToMetrics"`
		ServiceMap *struct {
			DatasourceUID string `yaml:"datasourceUid"`
		} `yaml:"serviceMap"`
	} `yaml:"jsonData"`
}

type dashboardProviders struct {
	Providers []struct {
		Name, Type string
		Options    struct{ Path string }
	}
}

type dsRef struct{ Type, UID string }

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *dsRef
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string `json:"refId"`
		Expr       string
		Datasource *dsRef
	}
	Panels []panel // a collapsed row's
}

type dashboard struct {
	UID, Title string
	Panels     []panel
	Templating struct {
		List []struct{ Name, Type, Query any }
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func loadCompose(t *testing.T) compose {
	var c compose
	readYAML(t, composeFile, &c)
	return c
}

func loadDatasources(t *testing.T) map[string]datasource {
	var f struct{ Datasources []datasource }
	readYAML(t, datasourcesFile, &f)
	byUID := map[string]datasource{}
	for _, d := range f.Datasources {
		if d.UID == "" {
			t.Errorf("%s: data source %q has no uid: dashboards cannot refer to it", datasourcesFile, d.Name)
		}
		if _, dup := byUID[d.UID]; dup {
			t.Errorf("%s: uid %q twice", datasourcesFile, d.UID)
		}
		byUID[d.UID] = d
	}
	return byUID
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens the panels of collapsed rows into the list.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// hostPort splits a URL's or address's host and port ("" host for ":9090").
func hostPort(t *testing.T, s string) (string, int) {
	t.Helper()
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		s = u.Host
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: port: %v", s, err)
	}
	return h, n
}

// --- compose ----------------------------------------------------------------

// TestCompose: every service of the stack is there, with pinned images;
// the three activityd processes are one image built from deploy/Dockerfile
// in three roles, each with its own service name, pointed at the stack's
// PostgreSQL, Redis and Tempo; every healthy-condition dependency has a
// healthcheck to wait on; bind mounts exist; published ports are bound to
// loopback (the stack has an anonymous Grafana admin and open /metrics).
func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"postgres", "redis", "serve", "worker", "scheduler", "prometheus", "tempo", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for name, s := range c.Services {
		repo, tag, ok := strings.Cut(s.Image, ":")
		if !ok || tag == "" || tag == "latest" || strings.Contains(tag, "/") {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		switch want := map[string]string{"postgres": "postgres:16", "redis": "redis:7", "prometheus": "prom/prometheus:v",
			"tempo": "grafana/tempo:2.", "grafana": "grafana/grafana:11."}[name]; {
		case want != "" && !strings.HasPrefix(s.Image, want):
			t.Errorf("%s: image %q, want %s…", name, s.Image, want)
		case want == "" && s.Build == nil:
			t.Errorf("%s: no build and no expected image (%s)", name, repo)
		}
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on %q, no such service", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition):
				t.Errorf("%s: depends_on %s: condition %q", name, dep, d.Condition)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q on every interface; bind it to 127.0.0.1", name, p)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts volume %q, not declared under volumes:", name, src)
			}
		}
	}
	for _, name := range []string{"postgres", "redis", "serve", "worker", "scheduler"} {
		if c.Services[name].Healthcheck == nil || len(c.Services[name].Healthcheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
	}

	image := c.Services["serve"].Image
	serviceNames := map[string]string{}
	for _, name := range activitydServices {
		s := c.Services[name]
		if s.Build == nil || s.Build.Context != ".." || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: build %+v, want context .. and dockerfile deploy/Dockerfile", name, s.Build)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if s.Image != image {
			t.Errorf("%s runs image %q, serve %q: want one image", name, s.Image, image)
		}
		if !slices.Equal(s.Command, []string{name}) {
			t.Errorf("%s: command %q, want [%s]", name, s.Command, name)
		}
		env := s.Environment
		if u, err := url.Parse(env["DATABASE_URL"]); err != nil || u.Scheme != "postgres" || c.Services[u.Hostname()].Image == "" ||
			!strings.HasPrefix(c.Services[u.Hostname()].Image, "postgres:") {
			t.Errorf("%s: DATABASE_URL %q is not the stack's PostgreSQL", name, env["DATABASE_URL"])
		}
		if env["REDIS_URL"] != "redis://redis:6379/0" {
			t.Errorf("%s: REDIS_URL %q", name, env["REDIS_URL"])
		}
		if h, _ := hostPort(t, env["OTEL_EXPORTER_OTLP_ENDPOINT"]); h != "tempo" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q is not Tempo", name, env["OTEL_EXPORTER_OTLP_ENDPOINT"])
		}
		if env["LOG_FORMAT"] != "json" {
			t.Errorf("%s: LOG_FORMAT %q, want json", name, env["LOG_FORMAT"])
		}
		sn := env["OTEL_SERVICE_NAME"]
		if other, dup := serviceNames[sn]; dup || sn == "" {
			t.Errorf("%s: OTEL_SERVICE_NAME %q (also %s's): each process needs its own", name, sn, other)
		}
		serviceNames[sn] = name
		if name != "serve" {
			if env["METRICS_ADDR"] == "" {
				t.Errorf("%s: no METRICS_ADDR, so no /metrics to scrape", name)
			}
			if _, ok := env["BOOTSTRAP_ADMIN_TOKEN"]; ok {
				t.Errorf("%s: BOOTSTRAP_ADMIN_TOKEN is serve's", name)
			}
		}
		for _, dep := range []string{"postgres", "redis"} {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s does not wait for %s to be healthy", name, dep)
			}
		}
	}
	serve := c.Services["serve"].Environment
	if _, ok := serve["METRICS_ADDR"]; ok {
		t.Error("serve: METRICS_ADDR set; it would move /metrics off port 8080, where Prometheus scrapes it")
	}
	// app.MinSecretLen is 24; the value must look like what it is.
	if tok := serve["BOOTSTRAP_ADMIN_TOKEN"]; len(tok) < 24 || strings.ContainsAny(tok, " \t") || !strings.Contains(strings.ToLower(tok), "demo") {
		t.Errorf("serve: BOOTSTRAP_ADMIN_TOKEN %q: want at least 24 characters, no spaces, visibly a demo value", tok)
	}
}

// TestDockerfile: a multi-stage build of static binaries on a distroless
// base, as a numeric non-root user, with the healthcheck binary compose's
// probes call; and its Go is at least go.mod's.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a runtime stage", len(froms))
	}
	if last := froms[len(froms)-1][1]; !strings.HasPrefix(last, "gcr.io/distroless/static") {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static…", last)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/activityd", "./deploy/healthcheck"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: no %s", want)
		}
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 {
		t.Error("Dockerfile: no USER")
	} else if u, _, _ := strings.Cut(users[len(users)-1][1], ":"); u == "0" || u == "root" || strings.Trim(u, "0123456789") != "" {
		t.Errorf("Dockerfile: USER %s, want a numeric non-root uid", users[len(users)-1][1])
	}

	goVersion := func(s string) []int {
		var v []int
		for _, f := range strings.Split(s, ".") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("Go version %q", s)
			}
			v = append(v, n)
		}
		return v
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)`).FindSubmatch(mod)
	g := regexp.MustCompile(`(?m)^FROM\s+golang:(\d+(?:\.\d+)*)`).FindStringSubmatch(df)
	if m == nil || g == nil {
		t.Fatalf("go.mod's go directive (%q) or the golang:VERSION build stage (%q) not found", m, g)
	}
	if slices.Compare(goVersion(g[1]), goVersion(string(m[1]))) < 0 {
		t.Errorf("Dockerfile builds with golang:%s, go.mod requires go %s (the image has GOTOOLCHAIN=local)", g[1], m[1])
	}

	c := loadCompose(t)
	for _, name := range activitydServices {
		hc := c.Services[name].Healthcheck
		if hc == nil || len(hc.Test) < 2 {
			continue // TestCompose says so
		}
		if hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/healthcheck" {
			t.Errorf("%s: healthcheck %q: the distroless image has no shell; use [CMD, /usr/local/bin/healthcheck, URL]", name, hc.Test)
		}
	}
	if !regexp.MustCompile(`(?m)^COPY --from=\S+ .*/out/healthcheck.* /usr/local/bin/`).MatchString(df) {
		t.Error("Dockerfile does not put the healthcheck binary in /usr/local/bin")
	}
}

// TestHealthcheckProbe: deploy/healthcheck exits 0 on a 2xx, 1 on any
// other status or no answer, 2 without a URL.
func TestHealthcheckProbe(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "healthcheck")
	if out, err := exec.Command("go", "build", "-o", bin, "./healthcheck").CombinedOutput(); err != nil {
		t.Fatalf("go build ./healthcheck: %v\n%s", err, out)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{srv.URL + "/healthz"}, 0},
		{[]string{srv.URL + "/healthz", srv.URL + "/readyz"}, 1},
		{[]string{closed.URL + "/healthz"}, 1},
		{nil, 2},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(os.Environ(), "HTTP_PROXY=http://127.0.0.1:1", "http_proxy=http://127.0.0.1:1")
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("healthcheck %v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

// --- Prometheus and Tempo ---------------------------------------------------

// TestPrometheusScrapesEveryProcess: serve on its API port (it has no
// METRICS_ADDR), worker and scheduler on their METRICS_ADDR port, each as
// its own job, at /metrics.
func TestPrometheusScrapesEveryProcess(t *testing.T) {
	c := loadCompose(t)
	var p prometheusConfig
	readYAML(t, prometheusFile, &p)
	targets := map[string]string{} // target → job
	for _, sc := range p.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = sc.JobName
			}
		}
	}
	jobs := map[string]string{}
	for _, name := range activitydServices {
		env := c.Services[name].Environment
		addr := env["METRICS_ADDR"]
		if addr == "" {
			addr = env["HTTP_ADDR"]
		}
		if addr == "" {
			addr = ":8080" // activityd's default HTTP_ADDR
		}
		_, port := hostPort(t, addr)
		target := fmt.Sprintf("%s:%d", name, port)
		job, ok := targets[target]
		if !ok {
			t.Errorf("%s serves /metrics on %s; prometheus.yml scrapes %v", name, target, slices.Sorted(maps.Keys(targets)))
			continue
		}
		if other, dup := jobs[job]; dup {
			t.Errorf("%s and %s share the job %q: the dashboard tells processes apart by job", name, other, job)
		}
		jobs[job] = name
	}
	if name := c.Services["serve"]; len(name.Ports) > 0 {
		if _, port := hostPort(t, c.Services["serve"].Environment["HTTP_ADDR"]); !slices.ContainsFunc(name.Ports,
			func(p string) bool { return strings.HasSuffix(p, ":"+strconv.Itoa(port)) }) {
			t.Errorf("serve listens on %d, publishes %v", port, name.Ports)
		}
	}
}

// TestTempo: Tempo receives OTLP on the port and protocol the activityd
// processes send to, on an address other containers reach; keeps its data
// in its volume; and its metrics-generator writes to a Prometheus that
// accepts remote writes.
func TestTempo(t *testing.T) {
	c := loadCompose(t)
	var tc tempoConfig
	readYAML(t, tempoFile, &tc)
	recv := tc.Distributor.Receivers.OTLP.Protocols
	if recv.HTTP == nil || recv.GRPC == nil {
		t.Fatalf("%s: want both OTLP receivers (http, grpc), got http %v grpc %v", tempoFile, recv.HTTP, recv.GRPC)
	}
	httpHost, httpPort := hostPort(t, recv.HTTP.Endpoint)
	grpcHost, grpcPort := hostPort(t, recv.GRPC.Endpoint)
	for _, h := range []string{httpHost, grpcHost} {
		if h == "localhost" || strings.HasPrefix(h, "127.") {
			t.Errorf("%s: a receiver listens on %s, out of the other containers' reach", tempoFile, h)
		}
	}
	if grpcPort != 4317 {
		t.Errorf("OTLP/gRPC on %d, want the standard 4317", grpcPort)
	}
	for _, name := range activitydServices {
		env := c.Services[name].Environment
		ep := env["OTEL_EXPORTER_OTLP_ENDPOINT"]
		proto := env["OTEL_EXPORTER_OTLP_PROTOCOL"] // activityd: HTTP/protobuf unless "grpc"
		want := httpPort
		if proto == "grpc" {
			want = grpcPort
		}
		if _, port := hostPort(t, ep); port != want {
			t.Errorf("%s sends OTLP (%s) to %s; Tempo's receiver is on %d", name, cmp.Or(proto, "http/protobuf"), ep, want)
		}
	}
	for _, p := range []string{fmt.Sprint(httpPort), fmt.Sprint(grpcPort)} {
		if !slices.ContainsFunc(c.Services["tempo"].Ports, func(s string) bool { return strings.HasSuffix(s, ":"+p) }) {
			t.Errorf("tempo does not publish %s (activityd run outside compose sends there)", p)
		}
	}

	if tc.Storage.Trace.Backend != "local" {
		t.Errorf("storage backend %q, want local", tc.Storage.Trace.Backend)
	}
	var mounts []string
	for _, v := range c.Services["tempo"].Volumes {
		if src, dst, _ := strings.Cut(v, ":"); !strings.HasPrefix(src, ".") {
			mounts = append(mounts, strings.TrimSuffix(dst, ":ro"))
		}
	}
	for _, p := range []string{tc.Storage.Trace.WAL.Path, tc.Storage.Trace.Local.Path, tc.MetricsGenerator.Storage.Path} {
		if !slices.ContainsFunc(mounts, func(m string) bool { return p == m || strings.HasPrefix(p, m+"/") }) {
			t.Errorf("Tempo writes %q outside its volumes %v", p, mounts)
		}
	}

	if len(tc.MetricsGenerator.Storage.RemoteWrite) > 0 {
		if len(tc.Overrides.Defaults.MetricsGenerator.Processors) == 0 {
			t.Error("metrics_generator has a remote_write but no processors enabled")
		}
		prom := c.Services["prometheus"]
		for _, rw := range tc.MetricsGenerator.Storage.RemoteWrite {
			if u, err := url.Parse(rw.URL); err != nil || u.Hostname() != "prometheus" || u.Path != "/api/v1/write" {
				t.Errorf("remote_write %q is not Prometheus' receiver", rw.URL)
			}
		}
		if !slices.Contains(prom.Command, "--web.enable-remote-write-receiver") {
			t.Error("Tempo remote-writes to Prometheus, which does not have --web.enable-remote-write-receiver")
		}
	}
}

// --- Grafana ----------------------------------------------------------------

// TestGrafanaProvisioning: the data sources point at the stack's
// Prometheus and Tempo; Tempo's trace-to-metrics links and service map use
// the Prometheus data source and query only exported metrics; the
// dashboard provider reads where compose mounts the dashboards.
func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	ds := loadDatasources(t)
	var tc tempoConfig
	readYAML(t, tempoFile, &tc)

	var prom, tempo *datasource
	for _, d := range ds {
		switch d.Type {
		case "prometheus":
			prom = &d
			if h, port := hostPort(t, d.URL); h != "prometheus" || port != 9090 {
				t.Errorf("Prometheus data source at %s, want http://prometheus:9090", d.URL)
			}
		case "tempo":
			tempo = &d
			if h, port := hostPort(t, d.URL); h != "tempo" || port != tc.Server.HTTPListenPort {
				t.Errorf("Tempo data source at %s, Tempo listens on tempo:%d", d.URL, tc.Server.HTTPListenPort)
			}
		}
	}
	if prom == nil || tempo == nil {
		t.Fatalf("want a prometheus and a tempo data source, got %v", slices.Sorted(maps.Keys(ds)))
	}
	isType := func(uid, typ string) bool { d, ok := ds[uid]; return ok && d.Type == typ }

	j := tempo.JSONData
	if j.TracesToMetrics == nil || !isType(j.TracesToMetrics.DatasourceUID, "prometheus") {
		t.Errorf("Tempo: tracesToMetrics %+v does not point at a prometheus data source uid", j.TracesToMetrics)
	} else {
		if len(j.TracesToMetrics.Queries) == 0 {
			t.Error("Tempo: tracesToMetrics has no queries")
		}
		for _, q := range j.TracesToMetrics.Queries {
			if strings.Contains(q.Query, "$__tags") && !strings.Contains(q.Query, "$$__tags") {
				t.Errorf("query %q: Grafana expands $__tags in provisioning files as an environment variable; write $$__tags", q.Query)
			}
			for _, m := range promql.Metrics(strings.ReplaceAll(q.Query, "$$", "$")) {
				if !knownMetric(m) {
					t.Errorf("tracesToMetrics query %q uses %s, which activityd does not export", q.Name, m)
				}
			}
		}
	}
	if j.ServiceMap == nil || !isType(j.ServiceMap.DatasourceUID, "prometheus") {
		t.Errorf("Tempo: serviceMap %+v does not point at a prometheus data source uid", j.ServiceMap)
	}
	for _, e := range prom.JSONData.ExemplarTraceIDDestinations {
		if !isType(e.DatasourceUID, "tempo") {
			t.Errorf("Prometheus: exemplar destination %q → %q, not a tempo data source", e.Name, e.DatasourceUID)
		}
	}

	var dp dashboardProviders
	readYAML(t, dashboardsFile, &dp)
	mounts := map[string]string{} // container path → host path
	for _, v := range c.Services["grafana"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	if mounts["/etc/grafana/provisioning"] != "./grafana/provisioning" {
		t.Errorf("grafana mounts %v; want ./grafana/provisioning on /etc/grafana/provisioning", mounts)
	}
	found := false
	for _, p := range dp.Providers {
		host, ok := mounts[p.Options.Path]
		if p.Type != "file" || !ok {
			t.Errorf("dashboard provider %q reads %s, which compose does not mount", p.Name, p.Options.Path)
			continue
		}
		if _, err := os.Stat(filepath.Join(host, filepath.Base(dashboardFile))); err == nil &&
			filepath.Clean(host) == filepath.Dir(dashboardFile) {
			found = true
		}
	}
	if !found {
		t.Errorf("no dashboard provider loads %s", dashboardFile)
	}
	if home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		dir, file := path.Split(home)
		if host, ok := mounts[strings.TrimSuffix(dir, "/")]; !ok {
			t.Errorf("home dashboard %s is not in a mounted directory", home)
		} else if _, err := os.Stat(filepath.Join(host, file)); err != nil {
			t.Errorf("home dashboard: %v", err)
		}
	}
}

// TestDashboard: uid activityd; every panel queries a provisioned
// Prometheus data source by uid; ids, refIds and the grid are sound; the
// queries use only the metrics activityd exports, with their labels, and
// every one of those metrics has a panel.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	ds := loadDatasources(t)
	if d.UID != "activityd" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q, want uid activityd and a title", d.UID, d.Title)
	}
	if len(d.Templating.List) > 0 {
		t.Errorf("dashboard has template variables %v: this test and test/e2e's do not resolve them", d.Templating.List)
	}

	ids := map[int]string{}
	used := map[string]bool{}
	type cell struct{ x, y int }
	grid := map[cell]string{}
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := grid[cell{x, y}]; taken {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				grid[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		if ref := p.Datasource; ref == nil || ref.Type != "prometheus" || ds[ref.UID].Type != "prometheus" {
			t.Errorf("panel %q: data source %+v is not a provisioned Prometheus uid", p.Title, ref)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && ds[tg.Datasource.UID].Type != "prometheus" {
				t.Errorf("panel %q %s: data source %+v is not a provisioned Prometheus uid", p.Title, tg.RefID, tg.Datasource)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			ms := promql.Metrics(tg.Expr)
			if len(ms) == 0 {
				t.Errorf("panel %q %s: no metric in %q", p.Title, tg.RefID, tg.Expr)
			}
			labels := map[string]bool{"job": true, "instance": true}
			for _, m := range ms {
				fam, ok := family(m)
				if !ok {
					t.Errorf("panel %q: %s is not an exported metric (README, Monitoring): %s", p.Title, m, tg.Expr)
					continue
				}
				used[fam] = true
				for _, l := range exported[fam].labels {
					labels[l] = true
				}
				if exported[fam].typ == "histogram" && strings.HasSuffix(m, "_bucket") {
					labels["le"] = true
				}
			}
			for _, l := range promql.GroupingLabels(tg.Expr) {
				if !labels[l] {
					t.Errorf("panel %q: groups by %q, a label none of %v has", p.Title, l, ms)
				}
			}
		}
	}
	for fam := range exported {
		if !used[fam] {
			t.Errorf("no panel shows %s", fam)
		}
	}
}

// family returns the exported family a metric name belongs to.
func family(name string) (string, bool) {
	if f, ok := exported[name]; ok && f.typ != "histogram" {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base].typ == "histogram" {
			return base, true
		}
	}
	return "", false
}

func knownMetric(name string) bool { _, ok := family(name); return ok }

// --- the real tools ---------------------------------------------------------

// need returns the path of a tool, or skips the test without it — fails
// it where CI is set, saying what to install.
func need(t *testing.T, tool, install string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found; CI must have it: %s", tool, install)
		}
		t.Skipf("%s not found (%s); skipping", tool, install)
	}
	return p
}

// TestPromtool: promtool accepts prometheus.yml, and every dashboard
// query as PromQL (as the expr of a recording rule, Grafana's $__
// variables replaced by what Grafana would put there).
func TestPromtool(t *testing.T) {
	promtool := need(t, "promtool", "apt-get install prometheus")
	if out, err := exec.Command(promtool, "check", "config", prometheusFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check config %s: %v\n%s", prometheusFile, err, out)
	}

	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range loadDashboard(t).allPanels() {
		for _, tg := range p.Targets {
			expr := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h").Replace(tg.Expr)
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:panel_%d:%s", p.ID, strings.ToLower(tg.RefID)), Expr: expr})
		}
	}
	raw, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool rejects dashboard queries: %v\n%s", err, out)
	}
}

// TestComposeConfig: Compose accepts compose.yaml (docker compose v2 when
// its plugin is there, else docker-compose).
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		cmd = exec.Command(docker, "compose", "-f", composeFile, "config", "-q")
	} else {
		cmd = exec.Command(need(t, "docker-compose", "apt-get install docker-compose"), "-f", composeFile, "config", "-q")
	}
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}
