// Package pipeline runs the stages that move a version along
// candidate → tested → ready: the test stage (a temporary instance booted
// from the final image, server tests, the instance destroyed) and, later,
// scans, runs, triggers and promotion. It works through the domain
// interfaces only (kiln.Registry, kiln.Platform, kiln.Inventory); it must
// not know how a platform boots an instance.
package pipeline
