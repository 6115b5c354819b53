// Package web serves kiln's dashboard: server-rendered HTML pages (fleet
// report with drill-down, exposure per advisory, overage, stale, image
// version history with lineage, pipeline runs) and the stylesheet they use,
// all embedded in the binary.
//
// It reads through the domain interfaces and the fleet package, so its
// numbers are the API's numbers. It must not know SQL, must not load
// anything from another origin (no CDN, no fonts), and must not emit inline
// script: the Content-Security-Policy of api.SecurityHeaders forbids it, and
// every core table works without JavaScript. Sign-in, sessions, security
// headers and cross-origin protection are the api package's; this package
// only uses them.
package web
