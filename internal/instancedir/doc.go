// Package instancedir is what the platform drivers that supervise their
// instances themselves (platform/local, platform/vm) share about an
// instance's directory on this machine: the JSON record written
// atomically, the supervisor lock and PID, starting the detached
// supervisor and reading its readiness report, processes identified by PID
// and start time, and the launch configuration written as credential
// files and compared later for drift. Drivers do not import each other;
// they import this.
package instancedir
