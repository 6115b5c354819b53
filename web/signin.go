package web

import (
	"net/http"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// maxFormBytes bounds the sign-in form; a token is under 100 bytes.
const maxFormBytes = 16 << 10

type signInData struct {
	Next string
}

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{Next: localNext(r.URL.Query().Get("next"))}})
}

// signIn checks the token from the form, opens a session (the cookie is
// set by api.Sessions) and goes on to the page the user wanted. The token
// is never logged nor written back into the page.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "signin", page{Title: "Sign in", Data: signInData{Next: Prefix + "fleet"},
			Error: "the sign-in form could not be read; send it from the sign-in page"})
		return
	}
	next := localNext(r.PostFormValue("next"))
	again := func(status int, msg string) {
		s.render(w, r, status, "signin", page{Title: "Sign in", Error: msg, Data: signInData{Next: next}})
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	if secret == "" {
		again(http.StatusBadRequest, "no token given; paste a token made with `kiln token create NAME --role viewer`")
		return
	}
	tok, err := s.cfg.Tokens.Authenticate(r.Context(), secret)
	if err != nil {
		if kiln.ErrorCode(err) != kiln.EUNAUTH {
			s.fail(w, r, "Sign in", err)
			return
		}
		again(http.StatusUnauthorized, "that token is unknown, expired or revoked; check it with `kiln token list` or create a new one")
		return
	}
	if !tok.Role.Allows(kiln.RoleViewer) {
		again(http.StatusForbidden, "token "+tok.Name+" has role "+string(tok.Role)+"; the dashboard needs viewer or a higher role")
		return
	}
	if _, err := s.sessions.SignIn(w, r, secret); err != nil {
		s.fail(w, r, "Sign in", err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "web: signed in", "token", tok.Name, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.SignOut(w, r); err != nil {
		s.cfg.Logger.WarnContext(r.Context(), "web: ending a session failed; the cookie is cleared anyway", "err", err)
	}
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
