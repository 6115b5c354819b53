package definition

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
)

// FileSuffix ends the name of every definition file of an estate.
const FileSuffix = ".kiln.hcl"

// Options says where estate variables get their values, in increasing
// precedence: defaults, Env, *.auto.kiln.vars.hcl files in the estate
// directory (name order), VarFiles (in order), Vars.
type Options struct {
	// Vars sets variables by name. Values of string variables are taken
	// literally; others are parsed as HCL expressions, e.g. ["main"].
	Vars map[string]string
	// VarFiles are HCL files of NAME = VALUE lines, named as the user gave
	// them (relative to the working directory, or absolute).
	VarFiles []string
	// Env is the environment to read KILN_VAR_NAME from, as os.Environ
	// returns it; nil reads none, which keeps Load independent of the
	// process environment unless the caller opts in.
	Env []string
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "image", LabelNames: []string{"name"}},
		{Type: "pipeline", LabelNames: []string{"name"}},
		{Type: "service", LabelNames: []string{"name"}},
		{Type: "environment", LabelNames: []string{"name"}}, // environment.go
	},
}

// loader holds the state of one Load.
type loader struct {
	dir     string // absolute, symlinks resolved
	ctx     *hcl.EvalContext
	digests map[string]string // file path → "sha256:…"
	// broken names the files with syntax errors: what is missing from
	// them may have been lost to the error, so it is not reported.
	broken map[string]bool
}

// Load reads every *.kiln.hcl file in dir (not its subdirectories) and
// returns the estate they define. It reports every problem found as a
// diagnostic, sorted by place; the estate is nil when any is an error.
// Warnings come with a usable estate.
func Load(dir string, opts Options) (*Estate, hcl.Diagnostics) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read estate directory",
			Detail: fmt.Sprintf("%s; give the directory that holds the *%s files.", err, FileSuffix)}}
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Estate is not a directory",
			Detail: fmt.Sprintf("%s is not a directory; give the directory that holds the *%s files.", dir, FileSuffix)}}
	}
	l := &loader{dir: abs, digests: map[string]string{}, broken: map[string]bool{}}
	est, diags := l.load(opts)
	sortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return est, diags
}

func (l *loader) load(opts Options) (*Estate, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read estate directory", Detail: err.Error() + "."}}
	}
	var files, autoVarFiles []string
	for _, e := range entries {
		name := e.Name()
		isDef, isVars := strings.HasSuffix(name, FileSuffix), strings.HasSuffix(name, AutoVarFileSuffix)
		if !isDef && !isVars {
			continue
		}
		if !e.Type().IsRegular() {
			// A symlink may point to a file of the estate; anything else
			// (outside the estate, a directory) is refused.
			if _, diag := l.resolvePath(name, hcl.Range{}, "definition file"); diag != nil {
				diag.Subject = nil
				diags = append(diags, diag)
				continue
			}
		}
		if isDef {
			files = append(files, name)
		} else {
			autoVarFiles = append(autoVarFiles, name)
		}
	}
	sort.Strings(files)
	sort.Strings(autoVarFiles)
	if len(files) == 0 {
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No definition files",
			Detail: fmt.Sprintf("%s holds no *%s files; write image definitions there, e.g. basic-linux%s.", l.dir, FileSuffix, FileSuffix)})
	}

	p := hclparse.NewParser()
	type parsed struct {
		name    string
		src     []byte
		content *hcl.BodyContent
	}
	var all []parsed
	for _, name := range files {
		src, err := os.ReadFile(filepath.Join(l.dir, name))
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read definition file", Detail: err.Error() + "."})
			continue
		}
		if diag := checkShape(src, name); diag != nil {
			diags = append(diags, diag)
			continue
		}
		f, d := p.ParseHCL(src, name)
		diags = append(diags, d...)
		if d.HasErrors() {
			l.broken[name] = true
		}
		if f == nil || f.Body == nil {
			continue
		}
		content, d := f.Body.Content(topSchema)
		diags = append(diags, d...)
		all = append(all, parsed{name, src, content})
	}

	// Variables first: locals and images may use them.
	vars := map[string]*Variable{}
	for _, f := range all {
		for _, b := range f.content.Blocks.OfType("variable") {
			diags = append(diags, declareVariable(b, vars)...)
		}
	}
	diags = append(diags, setVariables(p, l.dir, autoVarFiles, opts, vars)...)
	varVals := map[string]cty.Value{}
	for name, v := range vars {
		varVals[name] = v.Value
	}
	l.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(varVals), "local": cty.EmptyObjectVal},
		Functions: functions(),
	}

	locals := map[string]*hcl.Attribute{}
	for _, f := range all {
		for _, b := range f.content.Blocks.OfType("locals") {
			attrs, d := b.Body.JustAttributes()
			diags = append(diags, d...)
			for _, name := range slices.Sorted(maps.Keys(attrs)) {
				a := attrs[name]
				if prev, ok := locals[name]; ok {
					diags = append(diags, rangeError(a.NameRange, "Duplicate local",
						fmt.Sprintf("local.%s is already defined at %s; remove one of them.", name, pos(prev.NameRange))))
					continue
				}
				locals[name] = a
			}
		}
	}
	_, d := evalLocals(locals, l.ctx)
	diags = append(diags, d...)

	decls := map[string]*imageDecl{}
	for _, f := range all {
		for _, b := range f.content.Blocks.OfType("image") {
			name := b.Labels[0]
			if prev, ok := decls[name]; ok {
				diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate image",
					fmt.Sprintf("image %q is already defined at %s; rename or remove one of them.", name, pos(prev.img.Range))))
				continue
			}
			dec, d := l.decodeImage(b, f.src)
			diags = append(diags, d...)
			decls[name] = dec
		}
	}
	if len(decls) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No images",
			Detail: fmt.Sprintf("the *%s files in %s define no image; add an image \"NAME\" { … } block.", FileSuffix, l.dir)})
	}
	diags = append(diags, checkBases(decls)...)
	pipelines := map[string]*Pipeline{}
	for _, f := range all {
		for _, b := range f.content.Blocks.OfType("pipeline") {
			p, d := l.decodePipeline(b)
			diags = append(diags, d...)
			if prev, ok := pipelines[p.Name]; ok {
				diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate pipeline",
					fmt.Sprintf("pipeline %q is already defined at %s; rename or remove one of them.", p.Name, pos(prev.Range))))
				continue
			}
			pipelines[p.Name] = p
		}
	}
	diags = append(diags, checkPipelines(pipelines, decls)...)
	services := map[string]*Service{}
	for _, f := range all {
		for _, b := range f.content.Blocks.OfType("service") {
			s, d := l.decodeService(b)
			diags = append(diags, d...)
			if prev, ok := services[s.Service.Name]; ok {
				diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate service",
					fmt.Sprintf("service %q is already defined at %s; rename or remove one of them.", s.Service.Name, pos(prev.Range))))
				continue
			}
			services[s.Service.Name] = s
		}
	}
	diags = append(diags, checkServices(services, decls)...)
	envs := map[string]*EnvironmentPolicy{}
	for _, f := range all {
		diags = append(diags, l.decodeEnvironments(f.content.Blocks.OfType("environment"), envs)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	est := &Estate{Dir: l.dir, Files: files, Images: map[string]*Image{}, Order: order(decls), Variables: vars, Pipelines: pipelines, Services: services, Environments: envs}
	if diags = append(diags, checkKernels(decls, est.Order)...); diags.HasErrors() {
		return nil, diags
	}
	for _, name := range est.Order {
		dec := decls[name]
		var base *Image
		if dec.img.Base != nil {
			base = est.Images[dec.img.Base.Image]
		}
		diags = append(diags, l.imageDigest(dec, base)...)
		est.Images[name] = dec.img
	}
	return est, diags
}
