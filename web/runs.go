package web

import (
	"net/http"
	"strconv"

	kiln "github.com/kiln-project/kiln"
)

// Page sizes of the run list and of the log shown with a run.
const (
	runsPerPage = 50
	runLogLimit = 2000
)

type runsData struct {
	// Enabled is false when no run store is configured.
	Enabled bool
	Image   string
	Runs    []*kiln.Run
	Pager   pager
	// Stages are the stage-duration charts of the listed runs, per image.
	Stages []stageChart
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	const title = "Runs"
	d := runsData{Enabled: s.cfg.Runs != nil, Image: r.URL.Query().Get("image")}
	if d.Image != "" {
		if err := kiln.ValidateImageName(d.Image); err != nil {
			s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "image", "image %q is not an image name", d.Image))
			return
		}
	}
	offset, err := intParam(r.URL.Query(), "offset")
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Enabled {
		var total int
		d.Runs, total, err = s.cfg.Runs.ListRuns(r.Context(), kiln.RunFilter{Image: d.Image, Limit: runsPerPage, Offset: offset})
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		d.Pager = newPager(r.URL, offset, runsPerPage, total)
		d.Stages = stageCharts(d.Runs, s.cfg.Clock())
	}
	s.render(w, r, http.StatusOK, "runs", page{Title: title, Nav: "runs", Data: d})
}

type runData struct {
	Run  *kiln.Run
	Logs []*kiln.RunLog
	// Truncated is set when the log has more chunks than shown.
	Truncated bool
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	title := "Run " + r.PathValue("id")
	if s.cfg.Runs == nil {
		s.fail(w, r, title, kiln.Errorf(kiln.ENOTFOUND, "this server has no pipeline configured, so it has no runs"))
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "id", "%q is not a run number", r.PathValue("id")))
		return
	}
	run, err := s.cfg.Runs.FindRun(r.Context(), id)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	logs, err := s.cfg.Runs.RunLogs(r.Context(), id, 0, runLogLimit+1)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d := runData{Run: run, Logs: logs}
	if len(logs) > runLogLimit {
		d.Logs, d.Truncated = logs[:runLogLimit], true
	}
	p := page{Title: title + " · " + run.Image, Nav: "runs", Data: d}
	if !run.Status.Done() {
		p.Refresh = 5
	}
	s.render(w, r, http.StatusOK, "run", p)
}
