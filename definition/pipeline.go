package definition

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/robfig/cron/v3"

	"github.com/kiln-project/kiln"
)

// Pipeline is one `pipeline "NAME"` block: how the images it covers move
// from a build to ready and on through the delivery environments, and what
// starts a run.
type Pipeline struct {
	Name  string
	File  string
	Range hcl.Range
	// Images names the images it covers; empty means every image no other
	// pipeline names.
	Images []string
	// Stages are the non-delivery stages in order: "build" first, then
	// "test" and "scan" as declared.
	Stages []string
	// Environments are delivered to in order after the version is ready;
	// empty stops at ready.
	Environments []Environment
	// Schedule is a cron expression (five fields, or @daily, @weekly…)
	// for a routine run by `kiln serve`; empty for none.
	Schedule string
	// On lists the input changes `kiln serve` starts a run for: source,
	// origin, base, packages.
	On   []string
	Scan ScanPolicy
	// Test says where the test stage runs (testblock.go).
	Test TestPolicy
}

// Environment is one delivery target of a pipeline.
type Environment struct {
	Name string
	// Gate is "auto" or "approval" (`kiln approve RUN STAGE`).
	Gate string
	// Config is what instances launched in the environment are given
	// (config.go); nil for none.
	Config *Config
}

// ScanPolicy says what the scan stage does with affected packages.
type ScanPolicy struct {
	// OnAffected is "fail" or "warn".
	OnAffected string
	// MinSeverity ignores findings of lower severity: "" (all), low,
	// medium, high, critical. Findings without a severity count as medium.
	MinSeverity string
	// Include names the states of Debian's triage that count besides
	// affected and fixed-later (ScanIncludes): by default a finding Debian
	// marked no-dsa, postponed, ignored, unimportant or end-of-life does
	// not fail the scan, as Debian ships no DSA/DLA for it.
	Include []string
}

// ScanIncludes are the values scan's include accepts: the finding states
// of the advisory package, "no-dsa" for all three no-dsa decisions, and
// "all".
var ScanIncludes = []string{"affected", "fixed-later", "no-dsa", "postponed", "ignored", "unimportant", "end-of-life", "all"}

// Pipeline defaults.
var (
	DefaultStages   = []string{"build", "test", "scan"}
	DefaultTriggers = []string{"source", "origin", "base"}
	// TriggerNames are the values `on` accepts.
	TriggerNames = []string{"source", "origin", "base", "packages"}
	// Severities in increasing order.
	Severities = []string{"low", "medium", "high", "critical"}
)

// DefaultPipeline is what an image gets when no pipeline block covers it:
// build, test, scan (failing on any affected package), no delivery, no
// schedule.
func DefaultPipeline() *Pipeline {
	return &Pipeline{Name: "default", Stages: DefaultStages, On: DefaultTriggers, Scan: ScanPolicy{OnAffected: "fail"}}
}

// PipelineFor returns the pipeline that covers an image: the one naming it,
// else the one without images, else DefaultPipeline.
func (e *Estate) PipelineFor(image string) *Pipeline {
	var all *Pipeline
	for _, name := range slices.Sorted(maps.Keys(e.Pipelines)) {
		p := e.Pipelines[name]
		if len(p.Images) == 0 {
			all = p
		}
		if slices.Contains(p.Images, image) {
			return p
		}
	}
	if all != nil {
		return all
	}
	return DefaultPipeline()
}

// CronSchedule parses a pipeline schedule: five cron fields or a
// descriptor such as @weekly.
func CronSchedule(s string) (cron.Schedule, error) {
	return cron.ParseStandard(s)
}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "images"},
		{Name: "stages"},
		{Name: "environments"},
		{Name: "schedule"},
		{Name: "on"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "scan"},
		{Type: "test"},
		{Type: "environment", LabelNames: []string{"name"}},
	},
}

var scanSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "on_affected"}, {Name: "min_severity"}, {Name: "include"}},
}

var environmentSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "gate"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
}

// decodePipeline reads one pipeline block.
func (l *loader) decodePipeline(block *hcl.Block) (*Pipeline, hcl.Diagnostics) {
	rng := blockRange(block)
	p := DefaultPipeline()
	p.Name, p.File, p.Range = block.Labels[0], rng.Filename, rng
	content, diags := block.Body.Content(pipelineSchema)
	ctx, attrs := l.ctx, content.Attributes
	var d hcl.Diagnostics
	if a, ok := attrs["images"]; ok {
		p.Images, d = attrStrings(a, ctx, `["appserver", "container-node"]`)
		diags = append(diags, d...)
		for _, n := range p.Images {
			if err := kiln.ValidateImageName(n); err != nil {
				diags = append(diags, attrError(a, "Invalid image name", kilnMessage(err)))
			}
		}
	}
	if a, ok := attrs["stages"]; ok {
		p.Stages, d = attrStrings(a, ctx, `["build", "test", "scan"]`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			diags = append(diags, checkStages(a, p.Stages)...)
		}
	}
	if a, ok := attrs["schedule"]; ok {
		p.Schedule, d = attrString(a, ctx, `"0 4 * * 1"`)
		diags = append(diags, d...)
		if p.Schedule != "" {
			if _, err := CronSchedule(p.Schedule); err != nil {
				diags = append(diags, attrError(a, "Invalid schedule",
					fmt.Sprintf("%q is not a cron schedule (%v); write five fields MINUTE HOUR DAY MONTH WEEKDAY, e.g. \"0 4 * * 1\" for Mondays at 04:00, or @daily/@weekly.", p.Schedule, err)))
			}
		}
	}
	if a, ok := attrs["on"]; ok {
		p.On, d = attrStrings(a, ctx, `["source", "origin", "base", "packages"]`)
		diags = append(diags, d...)
		for _, t := range p.On {
			if !slices.Contains(TriggerNames, t) {
				diags = append(diags, attrError(a, "Unknown trigger", fmt.Sprintf("%q is not a trigger; use any of %s.", t, strings.Join(TriggerNames, ", "))))
			}
		}
	}
	gates := map[string]string{}
	configs := map[string]*Config{}
	for _, b := range content.Blocks.OfType("environment") {
		name := b.Labels[0]
		if err := kiln.ValidateEnvironment("environment", name); err != nil {
			diags = append(diags, rangeError(b.LabelRanges[0], "Invalid environment name", kilnMessage(err)))
		}
		ec, d := b.Body.Content(environmentSchema)
		diags = append(diags, d...)
		gate := "auto"
		if a, ok := ec.Attributes["gate"]; ok {
			gate, d = attrString(a, ctx, `"approval"`)
			diags = append(diags, d...)
			if gate != "auto" && gate != "approval" {
				diags = append(diags, attrError(a, "Invalid gate", fmt.Sprintf("gate %q is not known; use \"auto\" (deliver at once) or \"approval\" (wait for `kiln approve RUN %s`).", gate, name)))
			}
		}
		gates[name] = gate
		for i, cb := range ec.Blocks.OfType("config") {
			if i > 0 {
				diags = append(diags, rangeError(cb.DefRange, "Duplicate config block",
					fmt.Sprintf("environment %q already has a config block at %s; merge them into one.", name, pos(configs[name].Range))))
				continue
			}
			c, d := l.decodeConfig(cb)
			diags = append(diags, d...)
			configs[name] = c
		}
	}
	if a, ok := attrs["environments"]; ok {
		names, d := attrStrings(a, ctx, `["dev", "staging", "prod"]`)
		diags = append(diags, d...)
		seen := map[string]bool{}
		for _, n := range names {
			if err := kiln.ValidateEnvironment("environments", n); err != nil {
				diags = append(diags, attrError(a, "Invalid environment name", kilnMessage(err)))
			}
			if seen[n] {
				diags = append(diags, attrError(a, "Duplicate environment", fmt.Sprintf("environment %q is listed twice; deliver to each environment once.", n)))
			}
			seen[n] = true
			g := gates[n]
			if g == "" {
				g = "auto"
			}
			p.Environments = append(p.Environments, Environment{Name: n, Gate: g, Config: configs[n]})
		}
	}
	for _, b := range content.Blocks.OfType("environment") {
		found := false
		for _, e := range p.Environments {
			found = found || e.Name == b.Labels[0]
		}
		if !found {
			diags = append(diags, rangeError(b.LabelRanges[0], "Environment not delivered to",
				fmt.Sprintf("environment %q has settings but is not in environments; add it to environments = [...] in the order of delivery.", b.Labels[0])))
		}
	}
	diags = append(diags, l.decodeTests(p, content.Blocks.OfType("test"))...)
	for _, b := range content.Blocks.OfType("scan") {
		sc, d := b.Body.Content(scanSchema)
		diags = append(diags, d...)
		if a, ok := sc.Attributes["on_affected"]; ok {
			p.Scan.OnAffected, d = attrString(a, ctx, `"fail"`)
			diags = append(diags, d...)
			if p.Scan.OnAffected != "fail" && p.Scan.OnAffected != "warn" {
				diags = append(diags, attrError(a, "Invalid scan policy", fmt.Sprintf("on_affected %q is not known; use \"fail\" or \"warn\".", p.Scan.OnAffected)))
			}
		}
		if a, ok := sc.Attributes["min_severity"]; ok {
			p.Scan.MinSeverity, d = attrString(a, ctx, `"high"`)
			diags = append(diags, d...)
			if p.Scan.MinSeverity != "" && !slices.Contains(Severities, p.Scan.MinSeverity) {
				diags = append(diags, attrError(a, "Invalid severity", fmt.Sprintf("min_severity %q is not known; use one of %s.", p.Scan.MinSeverity, strings.Join(Severities, ", "))))
			}
		}
		if a, ok := sc.Attributes["include"]; ok {
			p.Scan.Include, d = attrStrings(a, ctx, `["no-dsa", "unimportant"]`)
			diags = append(diags, d...)
			for _, n := range p.Scan.Include {
				if !slices.Contains(ScanIncludes, n) {
					diags = append(diags, attrError(a, "Invalid scan include", fmt.Sprintf("include %q is not a finding state; use %s.", n, strings.Join(ScanIncludes, ", "))))
				}
			}
		}
	}
	return p, diags
}

func checkStages(a *hcl.Attribute, stages []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(stages) == 0 || stages[0] != "build" {
		diags = append(diags, attrError(a, "Pipeline must start with build", "the first stage makes the version; write stages = [\"build\", \"test\", \"scan\"]."))
	}
	seen := map[string]bool{}
	for _, s := range stages {
		if !slices.Contains(DefaultStages, s) {
			diags = append(diags, attrError(a, "Unknown stage", fmt.Sprintf("%q is not a stage; use build, test and scan (delivery is set with environments).", s)))
		}
		if seen[s] {
			diags = append(diags, attrError(a, "Duplicate stage", fmt.Sprintf("stage %q is listed twice.", s)))
		}
		seen[s] = true
	}
	return diags
}

// checkPipelines reports images named by no image block or by two
// pipelines, and more than one pipeline for all images.
func checkPipelines(ps map[string]*Pipeline, decls map[string]*imageDecl) hcl.Diagnostics {
	var diags hcl.Diagnostics
	owner := map[string]*Pipeline{}
	var all *Pipeline
	for _, n := range slices.Sorted(maps.Keys(ps)) {
		p := ps[n]
		if len(p.Images) == 0 {
			if all != nil {
				diags = append(diags, rangeError(p.Range, "Two pipelines for all images",
					fmt.Sprintf("pipeline %q and pipeline %q (%s) both cover every image; give one of them images = [...].", p.Name, all.Name, pos(all.Range))))
			}
			all = p
		}
		for _, img := range p.Images {
			if _, ok := decls[img]; !ok {
				diags = append(diags, rangeError(p.Range, "Unknown image in pipeline",
					fmt.Sprintf("pipeline %q names image %q, which no image block defines.", p.Name, img)))
			}
			if prev, ok := owner[img]; ok {
				diags = append(diags, rangeError(p.Range, "Image in two pipelines",
					fmt.Sprintf("image %q is in pipeline %q and pipeline %q (%s); an image follows one pipeline.", img, p.Name, prev.Name, pos(prev.Range))))
			}
			owner[img] = p
		}
	}
	return diags
}
