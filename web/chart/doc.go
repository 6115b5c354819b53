// Package chart draws the dashboard's pictures as inline SVG, on the
// server: horizontal stacked bars, a histogram with a threshold line, line
// charts over time and stacked columns over time.
//
// Each chart is a plain struct of numbers and labels whose SVG method
// returns markup for html/template. The markup must keep to what the
// dashboard's Content-Security-Policy allows: no script, no event
// attributes, and no style attributes or elements (style-src 'self').
// Colours are therefore CSS classes (c0…c7, the Okabe–Ito palette, which
// colour-blind readers can tell apart, defined in the dashboard's
// kiln.css), and what a colour alone would say is said again by a pattern,
// a dash or a label, so a chart still reads in greyscale print. Every chart
// carries a <title> and a <desc>; the page shows the same numbers in a
// table for screen readers and for copying.
//
// The package knows nothing of kiln's domain: callers turn reports into
// bars, bins and series.
package chart
