package deploy

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/shovel-metrics/shovel/config"
	"github.com/shovel-metrics/shovel/router"
	"github.com/shovel-metrics/shovel/router/kafka/kafkabroker"
	"github.com/shovel-metrics/shovel/router/kpi"
	"github.com/shovel-metrics/shovel/router/metric"
)

// The subset of the Compose file format the tests look at.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
	Restart     string            `yaml:"restart"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key in a service is an error here too
	require.NoError(t, dec.Decode(&c))
	return c
}

// flagValue returns the value after flag (or its alias) in args.
func flagValue(t *testing.T, args []string, flags ...string) string {
	t.Helper()
	for i, a := range args {
		if slices.Contains(flags, a) {
			require.Less(t, i+1, len(args), "%s has no value in %v", a, args)
			return args[i+1]
		}
	}
	t.Fatalf("no %v in %v", flags, args)
	return ""
}

// dependsOn returns the services s depends on, in either Compose form.
func dependsOn(t *testing.T, s composeService) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		require.NoError(t, s.DependsOn.Decode(&names))
		for _, n := range names {
			out[n] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		require.NoError(t, s.DependsOn.Decode(&m))
		for n, c := range m {
			out[n] = c.Condition
		}
	default:
		t.Fatalf("depends_on: unexpected YAML %v", s.DependsOn.Kind)
	}
	return out
}

// mount returns the host path mounted at target in s, relative to deploy/.
func mount(t *testing.T, s composeService, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	t.Fatalf("nothing mounted at %s (volumes %v)", target, s.Volumes)
	return ""
}

// containerPorts are the ports a service declares, from expose and from
// the container side of ports.
func containerPorts(s composeService) []string {
	out := append([]string(nil), s.Expose...)
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		out = append(out, strings.TrimSuffix(parts[len(parts)-1], "/tcp"))
	}
	return out
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"kafka", "kafka-init", "kafka-init-events", "graphite", "grafana", "shovel", "publisher", "publisher-voltha"} {
		require.Contains(t, c.Services, name)
	}
	// The stack runs the Kafka release the real-broker tests run.
	for _, name := range []string{"kafka", "kafka-init", "kafka-init-events"} {
		require.Equal(t, "apache/kafka:"+kafkabroker.Version, c.Services[name].Image, name)
	}
	require.True(t, strings.HasPrefix(c.Services["graphite"].Image, "graphiteapp/graphite-statsd:"))
	require.True(t, strings.HasPrefix(c.Services["grafana"].Image, "grafana/grafana"))
	for name, s := range c.Services {
		for dep := range dependsOn(t, s) {
			require.Contains(t, c.Services, dep, "%s depends on an unknown service", name)
		}
		for _, v := range s.Volumes {
			src := strings.Split(v, ":")[0]
			if strings.HasPrefix(src, ".") {
				_, err := os.Stat(src)
				require.NoError(t, err, "%s mounts %s", name, src)
			} else {
				require.Contains(t, c.Volumes, src, "%s uses an undeclared volume", name)
			}
		}
	}
	// shovel and the publishers run the image built from the repository's
	// Dockerfile, once the topics they use exist.
	for name, inits := range map[string][]string{
		"shovel": {"kafka-init", "kafka-init-events"}, "publisher": {"kafka-init"}, "publisher-voltha": {"kafka-init-events"},
	} {
		s := c.Services[name]
		require.NotNil(t, s.Build, name)
		require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
		deps := dependsOn(t, s)
		for _, init := range inits {
			require.Equal(t, "service_completed_successfully", deps[init], "%s starts after %s created its topic", name, init)
		}
	}
	require.Equal(t, "service_healthy", dependsOn(t, c.Services["kafka-init"])["kafka"])
	require.Equal(t, "service_healthy", dependsOn(t, c.Services["kafka-init-events"])["kafka"])
	require.NotNil(t, c.Services["kafka"].Healthcheck, "kafka-init waits for this")
}

func TestKafkaWiring(t *testing.T) {
	c := loadCompose(t)
	kafka := c.Services["kafka"]
	// The address containers use: the PLAINTEXT advertised listener.
	var inside string
	for _, l := range strings.Split(kafka.Environment["KAFKA_ADVERTISED_LISTENERS"], ",") {
		if a, ok := strings.CutPrefix(l, "PLAINTEXT://"); ok {
			inside = a
		}
	}
	host, port, err := net.SplitHostPort(inside)
	require.NoError(t, err, "advertised PLAINTEXT listener %q", inside)
	require.Equal(t, "kafka", host, "advertised under the service name")
	require.Contains(t, kafka.Environment["KAFKA_LISTENERS"], "PLAINTEXT://:"+port)
	require.Equal(t, "1@kafka:9093", kafka.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"])
	require.Contains(t, kafka.Environment["KAFKA_LISTENERS"], "CONTROLLER://:9093")
	require.Equal(t, "broker,controller", kafka.Environment["KAFKA_PROCESS_ROLES"], "KRaft, one node")

	cfg, err := config.Load("shovel.yaml")
	require.NoError(t, err)
	require.Equal(t, []string{inside}, cfg.Kafka.Brokers, "shovel consumes from the kafka service")

	pub := c.Services["publisher"].Command
	require.Equal(t, "publish", pub[0])
	require.Equal(t, inside, flagValue(t, pub, "-K", "--kafka"))
	topic := flagValue(t, pub, "-t", "--topic")
	require.Contains(t, cfg.Kafka.Topics, topic, "shovel consumes what the publisher publishes")

	initArgs := c.Services["kafka-init"].Command
	require.Equal(t, inside, flagValue(t, initArgs, "--bootstrap-server"))
	require.Equal(t, topic, flagValue(t, initArgs, "--topic"), "kafka-init creates the KPI topic")

	// The VOLTHA 2.x publisher: protobuf events on the topic shovel reads
	// them from, which kafka-init-events creates.
	events := c.Services["publisher-voltha"].Command
	require.Equal(t, "publish", events[0])
	require.Equal(t, inside, flagValue(t, events, "-K", "--kafka"))
	require.Equal(t, "voltha-event", flagValue(t, events, "--format"))
	eventsTopic := flagValue(t, events, "-t", "--topic")
	require.Contains(t, cfg.Kafka.Topics, eventsTopic, "shovel consumes what publisher-voltha publishes")
	eventsRoute := slices.IndexFunc(cfg.Routes, func(r config.Route) bool { return r.Match.Topic == eventsTopic })
	require.GreaterOrEqual(t, eventsRoute, 0, "a route takes %s", eventsTopic)
	require.Equal(t, "voltha-event", cfg.Routes[eventsRoute].Decoder)
	initEvents := c.Services["kafka-init-events"].Command
	require.Equal(t, inside, flagValue(t, initEvents, "--bootstrap-server"))
	require.Equal(t, eventsTopic, flagValue(t, initEvents, "--topic"), "kafka-init-events creates the events topic")

	shovel := c.Services["shovel"]
	require.Equal(t, "route", shovel.Command[0])
	cfgPath := flagValue(t, shovel.Command, "--config")
	require.Equal(t, "./shovel.yaml", mount(t, shovel, cfgPath), "the config shovel reads is deploy/shovel.yaml")
}

func TestCarbonWiring(t *testing.T) {
	c := loadCompose(t)
	cfg, err := config.Load("shovel.yaml")
	require.NoError(t, err)
	graphitePorts := containerPorts(c.Services["graphite"])

	kinds := map[string]string{}
	for name, o := range cfg.Outputs {
		addr, _ := o.Options["address"].(string)
		host, port, err := net.SplitHostPort(addr)
		require.NoError(t, err, "outputs.%s.address", name)
		require.Equal(t, "graphite", host, "outputs.%s points at the graphite service", name)
		require.Contains(t, graphitePorts, port, "graphite declares port %s", port)
		kinds[o.Kind] = port
	}
	require.Equal(t, map[string]string{"carbon-pickle": "2004", "carbon-plaintext": "2003"}, kinds)
	require.Equal(t, "graphite-line", cfg.Outputs["graphite"].Fallback, "plaintext takes over while pickle is down")
}

func TestShovelConfigBuilds(t *testing.T) {
	cfg, err := config.Load("shovel.yaml")
	require.NoError(t, err)
	_, err = config.Build(cfg, nil)
	require.NoError(t, err)
}

func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	grafana := c.Services["grafana"]
	prov := mount(t, grafana, "/etc/grafana/provisioning")
	require.DirExists(t, prov)

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool           `yaml:"isDefault"`
			JSONData                     map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources", "graphite.yaml"), &ds)
	require.Len(t, ds.Datasources, 1)
	d := ds.Datasources[0]
	require.Equal(t, "graphite", d.Type)
	u, err := url.Parse(d.URL)
	require.NoError(t, err)
	require.Equal(t, "graphite", u.Hostname(), "the datasource is the graphite service")
	require.Contains(t, containerPorts(c.Services["graphite"]), u.Port(), "graphite-web's port")
	require.Contains(t, dependsOn(t, grafana), "graphite")

	var dp struct {
		Providers []struct {
			Name, Type string
			Options    struct{ Path string } `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "shovel.yaml"), &dp)
	require.Len(t, dp.Providers, 1)
	dir := mount(t, grafana, dp.Providers[0].Options.Path)
	require.FileExists(t, filepath.Join(dir, "shovel.json"), "the provider's path holds the dashboard")

	dash := loadDashboard(t, filepath.Join(dir, "shovel.json"))
	for _, p := range dash.Panels {
		require.Equal(t, d.UID, p.Datasource.UID, "panel %q uses the provisioned datasource", p.Title)
		for _, tg := range p.Targets {
			require.Equal(t, d.UID, tg.Datasource.UID, "panel %q", p.Title)
		}
	}
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Target     string `json:"target"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	require.NoError(t, dec.Decode(&d))
	require.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Panels)
	return d
}

func readYAML(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, into), file)
}

// seriesRE finds the metric paths in a Graphite target: the arguments with
// a dot in them (functions and numbers have none).
var seriesRE = regexp.MustCompile(`[A-Za-z0-9_*$\-{}]+(?:\.[A-Za-z0-9_*$\-{}]+)+`)

// TestDashboardShowsWhatThePublisherSends checks every series the
// dashboard queries against the paths `shovel publish` produces in
// compose.yaml, so a renamed metric or prefix breaks this test rather
// than leaving an empty panel.
func TestDashboardShowsWhatThePublisherSends(t *testing.T) {
	c := loadCompose(t)
	prefix := flagValue(t, c.Services["publisher"].Command, "--prefix")
	require.True(t, metric.ValidPath(prefix))
	var published []string
	for _, m := range kpi.ProcessMetrics() {
		published = append(published, prefix+"."+m)
	}
	// publisher-voltha's events, as the voltha-event decoder's default
	// layout names them: the container's eth0 as an NNI port, and the
	// process under ProcessStats.
	device := "voltha." + flagValue(t, c.Services["publisher-voltha"].Command, "--device-id")
	require.True(t, metric.ValidPath(device))
	for _, m := range kpi.NNIMetrics() {
		published = append(published, device+".NNIStats.nni-eth0."+m)
	}
	for _, m := range kpi.ProcessMetrics() {
		published = append(published, device+".ProcessStats."+m)
	}

	d := loadDashboard(t, "grafana/dashboards/shovel.json")
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Query
		if strings.HasPrefix(v.Query, "tag_values(") {
			continue // a tag's values: TestDashboardTaggedPanels
		}
		// A variable lists the publishers of a format: its query must find one.
		ok, err := path.Match(v.Query, prefix)
		require.NoError(t, err)
		ok2, err := path.Match(v.Query, device)
		require.NoError(t, err)
		require.True(t, ok || ok2, "variable $%s (%s) finds the publisher %s or %s", v.Name, v.Query, prefix, device)
	}

	shown := map[string]bool{}
	for _, p := range d.Panels {
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, tg := range p.Targets {
			if strings.Contains(tg.Target, "seriesByTag(") {
				continue // TestDashboardTaggedPanels
			}
			series := seriesRE.FindAllString(tg.Target, -1)
			require.NotEmpty(t, series, "panel %q target %q names no series", p.Title, tg.Target)
			for _, s := range series {
				glob := s
				for name := range vars {
					glob = strings.ReplaceAll(glob, "${"+name+"}", "*")
					glob = strings.ReplaceAll(glob, "$"+name, "*")
				}
				require.NotContains(t, glob, "$", "panel %q uses an undefined variable: %s", p.Title, s)
				var matched bool
				for _, pub := range published {
					// Graphite's * stays within a segment; so must the match.
					if ok, _ := path.Match(strings.ReplaceAll(glob, ".", "/"), strings.ReplaceAll(pub, ".", "/")); ok {
						matched, shown[pub] = true, true
					}
				}
				require.True(t, matched, "panel %q queries %s, which the publisher never sends (it sends %v)", p.Title, s, published)
			}
		}
	}
	for _, pub := range published {
		require.True(t, shown[pub], "no panel shows %s", pub)
	}
}

// seriesByTagArgs returns the tag expressions of each seriesByTag call in
// a Graphite target: its single-quoted arguments.
func seriesByTagArgs(t *testing.T, target string) [][]string {
	var calls [][]string
	for rest := target; ; {
		i := strings.Index(rest, "seriesByTag(")
		if i < 0 {
			return calls
		}
		rest = rest[i+len("seriesByTag("):]
		var args []string
		for {
			rest = strings.TrimLeft(rest, " ,")
			if !strings.HasPrefix(rest, "'") {
				break
			}
			end := strings.IndexByte(rest[1:], '\'')
			require.GreaterOrEqual(t, end, 0, "unterminated string in %s", target)
			args = append(args, rest[1:1+end])
			rest = rest[2+end:]
		}
		require.True(t, strings.HasPrefix(rest, ")"), "seriesByTag takes quoted expressions only: %s", target)
		calls = append(calls, args)
	}
}

// TestDashboardTaggedPanels runs what publisher-voltha sends through the
// compose ensemble's shovel config (Router.DryRun, as shovel decode does)
// and checks that every seriesByTag of the dashboard finds some of the
// tagged series that come out, by seriesByTag's own rules
// (router.TagExpr), and that each tag_values variable names a tag they
// carry. The flat series still come out beside them.
func TestDashboardTaggedPanels(t *testing.T) {
	c := loadCompose(t)
	device := flagValue(t, c.Services["publisher-voltha"].Command, "--device-id")
	ts := time.Unix(1700000000, 0)
	var nni []kpi.Metric
	for i, m := range kpi.NNIMetrics() {
		nni = append(nni, kpi.Metric{Name: m, Value: float64(i)})
	}
	ev := kpi.Event{Title: "NNIStats", DeviceID: device, Time: ts, SubCategory: kpi.SubCategoryNNI, Metrics: nni,
		Context: []kpi.ContextEntry{{Key: "oltid", Value: device}, {Key: "devicetype", Value: "openolt"}, {Key: "portlabel", Value: "nni-eth0"}}}
	msg, err := ev.AppendProto(nil)
	require.NoError(t, err)

	cfg, err := config.Load("shovel.yaml")
	require.NoError(t, err)
	built, err := config.Build(cfg, nil, config.WithClock(func() time.Time { return ts }))
	require.NoError(t, err)
	var tagged, flat []string
	for _, o := range built.Router.DryRun(&metric.Message{Topic: "voltha.events", Value: msg}, "") {
		require.Empty(t, o.Rejected)
		require.Empty(t, o.Repaired)
		for _, smp := range o.Samples {
			if metric.IsTagged(smp.Path) {
				tagged = append(tagged, smp.Path)
			} else {
				flat = append(flat, smp.Path)
			}
		}
	}
	require.Len(t, flat, len(nni), "the flat series the other panels show")
	require.Len(t, tagged, len(nni))

	d := loadDashboard(t, "grafana/dashboards/shovel.json")
	for _, v := range d.Templating.List {
		if tag, ok := strings.CutPrefix(v.Query, "tag_values("); ok {
			tag = strings.TrimSuffix(tag, ")")
			e, err := router.ParseTagExpr(tag + "=~.+")
			require.NoError(t, err)
			for _, s := range tagged {
				require.True(t, e.Matches(s), "variable $%s: %s has no %s tag", v.Name, s, tag)
			}
		}
	}
	// A variable in an expression stands for any value.
	varRE := regexp.MustCompile(`\$\{[a-z_]+(:[a-z]+)?\}|\$[a-z_]+`)
	panels := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			calls := seriesByTagArgs(t, tg.Target)
			if len(calls) == 0 {
				continue
			}
			panels++
			for _, args := range calls {
				var found []string
				for _, series := range tagged {
					all := true
					for _, a := range args {
						e, err := router.ParseTagExpr(varRE.ReplaceAllString(a, ".*"))
						require.NoError(t, err, "panel %q", p.Title)
						all = all && e.Matches(series)
					}
					if all {
						found = append(found, series)
					}
				}
				require.NotEmpty(t, found, "panel %q: seriesByTag(%v) finds none of %v", p.Title, args, tagged)
			}
		}
	}
	require.GreaterOrEqual(t, panels, 3, "the dashboard's seriesByTag panels")
}
