package definition

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/kiln-project/kiln"
)

// Service is one `service "NAME"` block: a service of the estate with its
// rollout policy, validated with kiln.Service's own rules. `kiln estate
// add` and `kiln estate apply` record it (create it, or update what may
// change of it).
type Service struct {
	// Service is the service as declared, with defaults filled in.
	Service kiln.Service
	File    string
	Range   hcl.Range
}

var (
	serviceSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "image", Required: true}, {Name: "environment", Required: true}, {Name: "port", Required: true},
			{Name: "replicas"}, {Name: "instance_port"}, {Name: "health"}, {Name: "metrics_port"}, {Name: "follow"},
			{Name: "max_surge"}, {Name: "batch_size"}, {Name: "min_healthy"}, {Name: "bake_time"}, {Name: "max_error_rate"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "window"}, {Type: "limit"}, {Type: "gate"}},
	}
	windowSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "days"}, {Name: "hours", Required: true}, {Name: "zone", Required: true}}}
	limitSchema  = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "rollouts", Required: true}, {Name: "per", Required: true}}}
	gateSchema   = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "prometheus", Required: true}, {Name: "query", Required: true}, {Name: "max", Required: true}, {Name: "for"}}}
)

// serviceAttr maps kiln.Service's error fields to the block's attributes.
var serviceAttr = map[string]string{
	"name": "", "image": "image", "env": "environment", "replicas": "replicas", "port": "port", "instance-port": "instance_port",
	"health": "health", "max-surge": "max_surge", "batch-size": "batch_size", "min-healthy": "min_healthy", "bake-time": "bake_time",
	"max-error-rate": "max_error_rate", "metrics-port": "metrics_port", "follow": "follow",
}

// decodeService reads one service block.
func (l *loader) decodeService(block *hcl.Block) (*Service, hcl.Diagnostics) {
	rng := blockRange(block)
	out := &Service{File: rng.Filename, Range: rng}
	s := &out.Service
	s.Name, s.Replicas, s.Port, s.BakeTime = block.Labels[0], 1, 80, kiln.DefaultBakeTime
	content, diags := block.Body.Content(serviceSchema)
	ctx, attrs := l.ctx, content.Attributes
	var d hcl.Diagnostics
	str := func(name, example string, to *string) {
		if a, ok := attrs[name]; ok {
			*to, d = attrString(a, ctx, example)
			diags = append(diags, d...)
		}
	}
	integer := func(name, example string, lo, hi int64, to *int) {
		if a, ok := attrs[name]; ok {
			var n int64
			n, d = attrInt(a, ctx, example, lo, hi)
			diags = append(diags, d...)
			*to = int(n)
		}
	}
	str("image", `"appserver"`, &s.Image)
	str("environment", `"prod"`, &s.Environment)
	str("follow", `"none"`, &s.Follow)
	integer("replicas", "3", 1, 1000, &s.Replicas)
	integer("instance_port", "8080", 1, 65535, &s.Port)
	integer("max_surge", "1", 1, 1000, &s.MaxSurge)
	integer("batch_size", "2", 1, 1000, &s.BatchSize)
	integer("min_healthy", "100", 1, 100, &s.MinHealthyPercent)
	var port, metrics, health, bake string
	str("port", `"127.0.0.1:18080"`, &port)
	str("metrics_port", `"127.0.0.1:19080"`, &metrics)
	str("health", `"http:/healthz"`, &health)
	str("bake_time", `"30s"`, &bake)
	if a, ok := attrs["max_error_rate"]; ok {
		s.MaxErrorRate, d = attrFloat(a, ctx, "0.01")
		diags = append(diags, d...)
	}
	fieldErr := func(attr string, err error) {
		if a, ok := attrs[attr]; ok {
			diags = append(diags, attrError(a, "Invalid service", kilnMessage(err)+"."))
		} else {
			diags = append(diags, rangeError(block.DefRange, "Invalid service", kilnMessage(err)+"."))
		}
	}
	var err error
	if port != "" {
		if s.Listen, err = kiln.ParseListen("port", port); err != nil {
			fieldErr("port", err)
		}
	}
	if metrics != "" {
		if s.MetricsListen, err = kiln.ParseListen("metrics_port", metrics); err != nil {
			fieldErr("metrics_port", err)
		}
	}
	if health != "" {
		if s.Health, err = kiln.ParseHealthCheck("health", health); err != nil {
			fieldErr("health", err)
		}
	}
	if bake != "" {
		if s.BakeTime, err = time.ParseDuration(bake); err != nil {
			fieldErr("bake_time", fmt.Errorf("bake_time %q is not a duration; write e.g. \"30s\"", bake))
		}
	}
	for i, b := range content.Blocks {
		if slices.ContainsFunc(content.Blocks[:i], func(o *hcl.Block) bool { return o.Type == b.Type }) {
			diags = append(diags, rangeError(b.DefRange, "Duplicate "+b.Type+" block", fmt.Sprintf("service %q has one %s block at most; merge them.", s.Name, b.Type)))
			continue
		}
		switch b.Type {
		case "window":
			s.Policy.Window, d = l.decodeWindow(b)
		case "limit":
			s.Policy.Limit, d = l.decodeLimit(b)
		case "gate":
			s.Policy.Gate, d = l.decodeGate(b)
		}
		diags = append(diags, d...)
	}
	if diags.HasErrors() {
		return out, diags
	}
	if err := s.Validate(); err != nil {
		var ke *kiln.Error
		attr := ""
		if errors.As(err, &ke) {
			attr = serviceAttr[ke.Field]
		}
		if ke != nil && ke.Field == "name" {
			diags = append(diags, rangeError(block.LabelRanges[0], "Invalid service name", kilnMessage(err)+"."))
		} else {
			fieldErr(attr, err)
		}
	}
	return out, diags
}

func (l *loader) decodeWindow(b *hcl.Block) (*kiln.UpdateWindow, hcl.Diagnostics) {
	content, diags := b.Body.Content(windowSchema)
	attrs := content.Attributes
	w := &kiln.UpdateWindow{}
	var d hcl.Diagnostics
	var hours string
	if a, ok := attrs["days"]; ok {
		var days string
		days, d = attrString(a, l.ctx, `"mon-fri"`)
		diags = append(diags, d...)
		var err error
		if w.Days, err = kiln.ParseDays("days", days); err != nil {
			diags = append(diags, attrError(a, "Invalid days", kilnMessage(err)+"."))
		}
	}
	if a, ok := attrs["hours"]; ok {
		hours, d = attrString(a, l.ctx, `"02:00-05:00"`)
		diags = append(diags, d...)
		var ok bool
		if w.Start, w.End, ok = strings.Cut(hours, "-"); !ok {
			diags = append(diags, attrError(a, "Invalid hours", fmt.Sprintf("hours %q are not HH:MM-HH:MM; write e.g. \"02:00-05:00\".", hours)))
		}
	}
	if a, ok := attrs["zone"]; ok {
		w.Zone, d = attrString(a, l.ctx, `"Europe/Berlin"`)
		diags = append(diags, d...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if err := w.ValidateField("window"); err != nil {
		a := attrs["hours"]
		if strings.Contains(err.Error(), "zone") {
			a = attrs["zone"]
		}
		diags = append(diags, attrError(a, "Invalid window", kilnMessage(err)+"."))
	}
	return w, diags
}

func (l *loader) decodeLimit(b *hcl.Block) (*kiln.RolloutLimit, hcl.Diagnostics) {
	content, diags := b.Body.Content(limitSchema)
	attrs := content.Attributes
	lim := &kiln.RolloutLimit{}
	var d hcl.Diagnostics
	if a, ok := attrs["rollouts"]; ok {
		var n int64
		n, d = attrInt(a, l.ctx, "2", 1, 10000)
		diags = append(diags, d...)
		lim.Count = int(n)
	}
	if a, ok := attrs["per"]; ok {
		var per string
		per, d = attrString(a, l.ctx, `"24h"`)
		diags = append(diags, d...)
		var err error
		if lim.Per, err = time.ParseDuration(per); err != nil && !d.HasErrors() {
			diags = append(diags, attrError(a, "Invalid period", fmt.Sprintf("per %q is not a duration; write e.g. \"24h\".", per)))
		} else if err == nil {
			if err := lim.ValidateField("limit"); err != nil {
				diags = append(diags, attrError(a, "Invalid limit", kilnMessage(err)+"."))
			}
		}
	}
	return lim, diags
}

func (l *loader) decodeGate(b *hcl.Block) (*kiln.MetricGate, hcl.Diagnostics) {
	content, diags := b.Body.Content(gateSchema)
	attrs := content.Attributes
	g := &kiln.MetricGate{}
	var d hcl.Diagnostics
	if a, ok := attrs["prometheus"]; ok {
		g.Prometheus, d = attrString(a, l.ctx, `"http://127.0.0.1:9090"`)
		diags = append(diags, d...)
	}
	if a, ok := attrs["query"]; ok {
		g.Query, d = attrString(a, l.ctx, `"sum(rate(kiln_frontend_errors_total{service=\"web\"}[1m]))"`)
		diags = append(diags, d...)
	}
	if a, ok := attrs["max"]; ok {
		g.Max, d = attrFloat(a, l.ctx, "0.01")
		diags = append(diags, d...)
	}
	if a, ok := attrs["for"]; ok {
		var s string
		s, d = attrString(a, l.ctx, `"30s"`)
		diags = append(diags, d...)
		var err error
		if g.For, err = time.ParseDuration(s); err != nil && !d.HasErrors() {
			diags = append(diags, attrError(a, "Invalid duration", fmt.Sprintf("for %q is not a duration; write e.g. \"30s\".", s)))
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	if err := g.Validate(); err != nil {
		var ke *kiln.Error
		name := "query"
		if errors.As(err, &ke) {
			name = strings.TrimPrefix(ke.Field, "gate.")
		}
		if a, ok := attrs[name]; ok {
			diags = append(diags, attrError(a, "Invalid gate", kilnMessage(err)+"."))
		} else {
			diags = append(diags, rangeError(b.DefRange, "Invalid gate", kilnMessage(err)+"."))
		}
	}
	return g, diags
}

func attrFloat(attr *hcl.Attribute, ctx *hcl.EvalContext, example string) (float64, hcl.Diagnostics) {
	v, diags := evalAttr(attr, ctx, cty.Number, example)
	if v == cty.NilVal {
		return 0, diags
	}
	f, _ := v.AsBigFloat().Float64()
	return f, diags
}

// checkServices refuses services that name an image the estate does not
// define, and two services on one front end or metrics address.
func checkServices(svcs map[string]*Service, decls map[string]*imageDecl) hcl.Diagnostics {
	var diags hcl.Diagnostics
	used := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(svcs)) {
		s := svcs[name]
		if _, ok := decls[s.Service.Image]; !ok && s.Service.Image != "" {
			diags = append(diags, rangeError(s.Range, "Unknown image",
				fmt.Sprintf("service %q runs image %q, which this estate does not define; define it or correct the name.", name, s.Service.Image)))
		}
		for _, addr := range []string{s.Service.Listen, s.Service.MetricsListen} {
			if addr == "" {
				continue
			}
			if other, ok := used[addr]; ok {
				diags = append(diags, rangeError(s.Range, "Address in use",
					fmt.Sprintf("service %q listens on %s, which service %q uses already; give each service its own ports.", name, addr, other)))
			}
			used[addr] = name
		}
	}
	return diags
}
