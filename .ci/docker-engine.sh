#!/usr/bin/env bash
# Gives a CI machine (Debian 12, root, no registry to pull from) a running Docker engine: installs Debian's docker.io
# when dockerd is missing, starts dockerd in the background and waits until it answers; `stop` stops what it started.
#
# Usage: .ci/docker-engine.sh [start|stop|status]   (sourcing the file runs `start`)
#
# dockerd runs as Debian ships it (docker.io 20.10, API 1.41) on the usual /var/run/docker.sock, with nothing in
# front of it: the harness (testcontainers 0.28 / bollard) works against it as it is, which .ci/run checks by running
# the docker backend here.

if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
	# Sourced: start it from a child bash, so that nothing (options, functions, exit) leaks into the caller's shell.
	bash "${BASH_SOURCE[0]}" start
	return $?
fi
set -euo pipefail

ci_docker_engine_defaults() {
	SELF=${BASH_SOURCE[0]}
	CI_STATE_DIR=${CI_STATE_DIR:-/tmp/insforge-rls-ci}
	DOCKERD_SOCKET=/var/run/docker.sock
	DOCKERD_PIDFILE=$CI_STATE_DIR/dockerd.pid
	DOCKERD_LOG=$CI_STATE_DIR/dockerd.log
	READY_TIMEOUT=${CI_DOCKERD_TIMEOUT:-60}
	# --ip-forward=false: this machine must not route container traffic to other networks, and nothing here needs
	# it: the host reaches containers on docker0 directly and published ports go through docker-proxy.
	DOCKERD_FLAGS=(--ip-forward=false)
	APT_UPDATED=false
}

say() { printf 'docker-engine: %s\n' "$*"; }
warn() { printf 'docker-engine: warning: %s\n' "$*" >&2; }
die() {
	printf 'docker-engine: error: %s\n' "$*" >&2
	exit 1
}

# True when a Docker client gets an answer (from DOCKER_HOST, else /var/run/docker.sock, or from the host given).
docker_answers() {
	if [[ $# -gt 0 ]]; then
		timeout 10 docker --host "$1" info >/dev/null 2>&1
	else
		timeout 10 docker info >/dev/null 2>&1
	fi
}

# live_pid PIDFILE COMM [ARG]: the pid in PIDFILE when that process is alive, is named COMM and has ARG among its arguments.
live_pid() {
	local pidfile=$1 comm=$2 arg=${3:-} pid
	[[ -r $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
	if [[ -n $arg ]]; then
		grep -qxF -- "$arg" < <(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	fi
	printf '%s\n' "$pid"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds (0) or SECONDS have passed (1).
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

apt_install() {
	if [[ $APT_UPDATED == false ]]; then
		say "apt-get update"
		apt-get update -qq || die "apt-get update failed; check this machine's apt sources and network, then run again"
		APT_UPDATED=true
	fi
	say "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		die "apt-get install $* failed; run it by hand to see why"
}

ensure_packages() {
	local -a missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	command -v docker >/dev/null || missing+=(docker.io)
	if [[ ${#missing[@]} -gt 0 ]]; then
		[[ $(id -u) == 0 ]] || die "needs root to install ${missing[*]}; run it as root"
		# shellcheck disable=SC2046 # de-duplicated package names, no spaces
		apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
	fi
}

# Last lines of a log, indented, for error messages.
log_tail() {
	tail -n "${2:-25}" "$1" 2>/dev/null | sed 's/^/    | /' >&2 || true
}

dockerd_answers() { docker_answers "unix://$DOCKERD_SOCKET"; }
dockerd_answers_or_exited() { dockerd_answers || ! kill -0 "$1" 2>/dev/null; }

# Starts dockerd with the given extra flags and waits until it answers; returns 1 when it exits or times out.
launch_dockerd() {
	local pid started=$SECONDS
	say "starting dockerd ${DOCKERD_FLAGS[*]}${*:+ $*} (log: $DOCKERD_LOG)"
	printf '==== %s: dockerd %s %s\n' "$(date -u +%FT%TZ)" "${DOCKERD_FLAGS[*]}" "$*" >>"$DOCKERD_LOG"
	setsid dockerd --host "unix://$DOCKERD_SOCKET" "${DOCKERD_FLAGS[@]}" "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$DOCKERD_PIDFILE"
	if ! wait_until "$READY_TIMEOUT" dockerd_answers_or_exited "$pid"; then
		warn "dockerd (pid $pid) did not answer within $READY_TIMEOUT s"
		return 1
	fi
	if ! dockerd_answers; then
		warn "dockerd exited while starting"
		rm -f "$DOCKERD_PIDFILE"
		return 1
	fi
	say "dockerd (pid $pid) answers after $((SECONDS - started)) s"
}

start_dockerd() {
	local pid other
	if pid=$(live_pid "$DOCKERD_PIDFILE" dockerd); then
		say "dockerd started earlier by this script is running (pid $pid); waiting for it to answer"
		wait_until "$READY_TIMEOUT" dockerd_answers && return 0
		log_tail "$DOCKERD_LOG"
		die "dockerd (pid $pid) runs but does not answer on $DOCKERD_SOCKET; run '$SELF stop', then '$SELF start'"
	fi
	if other=$(live_pid /var/run/docker.pid dockerd); then
		die "another dockerd (pid $other, not started by this script) runs but does not answer; stop it, then run '$SELF start' again"
	fi
	rm -f "$DOCKERD_PIDFILE"
	: >"$DOCKERD_LOG"
	if launch_dockerd; then
		return 0
	fi
	if ! live_pid "$DOCKERD_PIDFILE" dockerd >/dev/null && grep -qiE 'iptables|nf_tables|NAT chain' "$DOCKERD_LOG"; then
		# Kernels without netfilter NAT: containers still work and docker-proxy still publishes ports on the host.
		warn "dockerd failed on iptables; trying again with --iptables=false"
		if launch_dockerd --iptables=false; then
			return 0
		fi
	fi
	log_tail "$DOCKERD_LOG"
	stop_dockerd quiet
	die "dockerd did not start (last lines of $DOCKERD_LOG above). Fix the cause, or set CI_DOCKERD_TIMEOUT to wait longer, then run '$SELF start' again"
}

ci_docker_engine_start() {
	if docker_answers; then
		say "Docker already answers; nothing to do"
		return 0
	fi
	ensure_packages
	[[ $(id -u) == 0 ]] || die "dockerd needs root; run '$SELF start' as root"
	mkdir -p "$CI_STATE_DIR"
	if ! docker_answers "unix://$DOCKERD_SOCKET"; then
		start_dockerd
	fi
	docker_answers || die "dockerd runs but 'docker info' gets no answer; is DOCKER_HOST (${DOCKER_HOST:-unset}) pointing elsewhere?"
	say "Docker is ready: $(docker version --format 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})')"
}

# stop_process PIDFILE COMM ARG SECONDS WHAT: SIGTERM to the process of PIDFILE (see live_pid), SIGKILL after SECONDS.
stop_process() {
	local pidfile=$1 comm=$2 arg=$3 seconds=$4 what=$5 pid
	pid=$(live_pid "$pidfile" "$comm" "$arg") || {
		rm -f "$pidfile"
		return 0
	}
	say "stopping $what (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until "$seconds" process_gone "$pid"; then
		warn "$what (pid $pid) still runs after $seconds s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 5 process_gone "$pid" || warn "$what (pid $pid) survived SIGKILL"
	fi
	rm -f "$pidfile"
}

process_gone() { ! kill -0 "$1" 2>/dev/null; }

stop_dockerd() {
	local containerd
	# dockerd stops running containers first (their stop signal, SIGKILL after 15 s) and then its own containerd.
	stop_process "$DOCKERD_PIDFILE" dockerd '' 60 dockerd
	# Only when dockerd had to be killed: the containerd it started would be left behind.
	if containerd=$(live_pid /var/run/docker/containerd/containerd.pid containerd); then
		[[ ${1:-} == quiet ]] || warn "containerd started by dockerd (pid $containerd) is still running; stopping it"
		stop_process /var/run/docker/containerd/containerd.pid containerd '' 20 containerd
	fi
}

ci_docker_engine_stop() {
	if live_pid "$DOCKERD_PIDFILE" dockerd >/dev/null; then
		stop_dockerd
	else
		say "no dockerd started by this script is running"
		rm -f "$DOCKERD_PIDFILE"
	fi
}

ci_docker_engine_status() {
	local pid
	if pid=$(live_pid "$DOCKERD_PIDFILE" dockerd); then say "dockerd started by this script: pid $pid"; else say "dockerd started by this script: not running"; fi
	if docker_answers; then say "docker info: answers"; else
		say "docker info: no answer"
		return 1
	fi
}

ci_docker_engine_main() {
	ci_docker_engine_defaults
	case ${1:-start} in
	start) ci_docker_engine_start ;;
	stop) ci_docker_engine_stop ;;
	status) ci_docker_engine_status ;;
	*) die "unknown command '$1'; usage: $SELF [start|stop|status]" ;;
	esac
}

ci_docker_engine_main "$@"
