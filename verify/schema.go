package verify

import (
	"sort"
	"strings"
)

// kind is the type of value a probe returns for an attribute; it decides
// how plain YAML values in the file are read.
type kind int

const (
	kindBool    kind = iota + 1
	kindInt          // numbers: uid, exit-status, status
	kindString       // mode "0644" stays a string even when written 0644
	kindStrings      // a list: versions, groups, ip
	kindText         // output read line by line: contents, stdout, body
	kindAny          // matching's content: plain values read by their YAML type
)

// schema describes one resource type kiln can probe.
type schema struct {
	// target is the attribute that names what to probe; the key otherwise.
	target string
	// checks are the attributes holding expectations.
	checks map[string]kind
	// required are the checks goss requires; a resource without them
	// would assert too little to be a test.
	required []string
	// options are other attributes (timeouts, request settings).
	options map[string]kind
	// aliases are other names goss accepts for a check (dns's resolveable).
	aliases map[string]string
}

// schemas lists the resource types kiln supports: all sixteen of goss's
// (gossfile is read by the parser itself).
var schemas = map[string]schema{
	"package": {target: "name", required: []string{"installed"}, checks: map[string]kind{
		"installed": kindBool, "versions": kindStrings}},
	"file": {target: "path", required: []string{"exists"}, checks: map[string]kind{
		"exists": kindBool, "mode": kindString, "owner": kindString, "group": kindString,
		"uid": kindInt, "gid": kindInt, "filetype": kindString, "size": kindInt,
		"linked-to": kindString, "contents": kindText, "contains": kindText,
		"md5": kindString, "sha256": kindString, "sha512": kindString}},
	"port": {target: "port", required: []string{"listening"}, checks: map[string]kind{
		"listening": kindBool, "ip": kindStrings}},
	"service": {target: "name", checks: map[string]kind{
		"enabled": kindBool, "running": kindBool, "runlevels": kindStrings}},
	"user": {target: "username", required: []string{"exists"}, checks: map[string]kind{
		"exists": kindBool, "uid": kindInt, "gid": kindInt, "groups": kindStrings,
		"home": kindString, "shell": kindString}},
	"group": {target: "groupname", required: []string{"exists"}, checks: map[string]kind{
		"exists": kindBool, "gid": kindInt}},
	"command": {target: "exec", required: []string{"exit-status"}, checks: map[string]kind{
		"exit-status": kindInt, "stdout": kindText, "stderr": kindText},
		options: map[string]kind{"timeout": kindInt}},
	"http": {target: "url", required: []string{"status"}, checks: map[string]kind{
		"status": kindInt, "body": kindText, "headers": kindText},
		options: map[string]kind{"timeout": kindInt, "method": kindString,
			"allow-insecure": kindBool, "no-follow-redirects": kindBool,
			"request-headers": kindStrings, "request-body": kindString,
			"username": kindString, "password": kindString, "proxy": kindString}},
	"process": {target: "comm", required: []string{"running"}, checks: map[string]kind{
		"running": kindBool}},
	"kernel-param": {target: "name", required: []string{"value"}, checks: map[string]kind{
		"value": kindString}},
	"addr": {target: "address", required: []string{"reachable"}, checks: map[string]kind{
		"reachable": kindBool},
		options: map[string]kind{"timeout": kindInt, "local-address": kindString}},
	"dns": {target: "resolve", required: []string{"resolvable"}, checks: map[string]kind{
		"resolvable": kindBool, "addrs": kindStrings},
		options: map[string]kind{"timeout": kindInt, "server": kindString},
		aliases: map[string]string{"resolveable": "resolvable"}},
	"interface": {target: "name", required: []string{"exists"}, checks: map[string]kind{
		"exists": kindBool, "addrs": kindStrings, "mtu": kindInt}},
	"mount": {target: "mountpoint", required: []string{"exists"}, checks: map[string]kind{
		"exists": kindBool, "opts": kindStrings, "vfs-opts": kindStrings, "source": kindString,
		"filesystem": kindString, "usage": kindInt},
		options: map[string]kind{"timeout": kindInt}},
	"matching": {required: []string{"matches"}, checks: map[string]kind{
		"matches": kindAny},
		options: map[string]kind{"content": kindAny}},
}

// commonAttrs are accepted on every resource type.
var commonAttrs = []string{"title", "meta", "skip"}

// attrs lists every attribute a type accepts, for error messages.
func (s schema) attrs() string {
	var names []string
	for n := range s.checks {
		names = append(names, n)
	}
	for n := range s.options {
		names = append(names, n)
	}
	for n := range s.aliases {
		names = append(names, n)
	}
	if s.target != "" {
		names = append(names, s.target)
	}
	names = append(names, commonAttrs...)
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// typeNames lists the supported resource types, for error messages.
func typeNames() string {
	names := []string{"gossfile"}
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
