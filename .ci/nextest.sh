#!/usr/bin/env bash
# nextest, proven by runs (called by .ci/run; runs alone too, local backend, PostgreSQL binaries
# on PATH): with nothing set up a run makes ONE server and leaves nothing behind; two
# --partition shards side by side each make their own; after `cargo xtask setup` a run makes
# none; an archive built in one checkout runs from a moved copy (--workspace-remap).
#
#   .ci/nextest.sh WORK_DIR [CRATE_ARGS…]    e.g. .ci/nextest.sh /tmp/nx --workspace
#
# Servers are counted by an initdb wrapper (INSFORGE_RLS_PG_BINDIR) that logs the folder each
# cluster is made in; the harness's own cluster tests (TLS, ports) make theirs in tempdirs and
# are not counted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
work=${1:?usage: .ci/nextest.sh WORK_DIR [CRATE_ARGS…]}
shift
crates=("$@")
[[ ${#crates[@]} -gt 0 ]] || crates=(--workspace)
rm -rf "$work"
mkdir -p "$work"
export INSFORGE_RLS_BACKEND=local

# A setup this script made is torn down however it ends.
trap 'status=$?; [[ -e $work/state-setup/state.json ]] && INSFORGE_RLS_STATE_DIR=$work/state-setup cargo xtask teardown >/dev/null 2>&1; exit $status' EXIT

step() { printf '\n==> nextest: %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# PostgreSQL binaries with a counting initdb in front.
real_bin=$(pg_config --bindir)
bin=$work/pgbin
mkdir -p "$bin"
for exe in "$real_bin"/*; do ln -s "$exe" "$bin/"; done
rm "$bin/initdb"
cat >"$bin/initdb" <<SH
#!/bin/sh
prev=
for arg in "\$@"; do [ "\$prev" = -D ] && echo "\$arg" >>"$work/initdb.log"; prev=\$arg; done
exec "$real_bin/initdb" "\$@"
SH
chmod 755 "$bin/initdb"
# The server runs as postgres when we are root: it appends to the log through the wrapper.
touch "$work/initdb.log"
chmod 666 "$work/initdb.log"
chmod 755 "$work"
export INSFORGE_RLS_PG_BINDIR=$bin

shm_before=$(ls -d /dev/shm/insforge-rls-* 2>/dev/null || true)
# Scratch folders that appeared since the script started (only new ones are its leftovers).
new_shm_folders() {
	comm -13 <(printf '%s\n' "$shm_before" | sort) <(ls -d /dev/shm/insforge-rls-* 2>/dev/null | sort) | grep . || true
}

# Polls (bounded) until nothing of a run is left under STATE_DIR: no process with the folder
# in its command line, an empty folder, no new scratch folder in /dev/shm.
nothing_left() { # nothing_left STATE_DIR
	local dir=$1 i
	for ((i = 0; i < 300; i++)); do
		if ! pgrep -f -- "$dir" >/dev/null &&
			[[ -z $(ls -A "$dir" 2>/dev/null) ]] &&
			[[ -z $(new_shm_folders) ]]; then
			echo "nothing left in $dir (checked $((i + 1)) times)"
			return 0
		fi
		sleep 0.1
	done
	echo "the nextest run left something behind:" >&2
	pgrep -af -- "$dir" >&2 || true
	ls -laR "$dir" >&2 || true
	ls -d /dev/shm/insforge-rls-* >&2 || true
	return 1
}

# Checks how many nextest-run servers were made since the last check.
seen=0
expect_servers() { # expect_servers N WHAT
	local total made
	total=$(grep -c '/nextest-' "$work/initdb.log" || true)
	made=$((total - seen))
	seen=$total
	[[ $made == "$1" ]] || { echo "$2 made $made servers, expected $1" >&2; return 1; }
	echo "$2 made $made server(s), as expected"
}

timed() { # timed LABEL COMMAND… — prints the wall time of COMMAND
	local start=$SECONDS status=0
	"${@:2}" || status=$?
	echo "$1 took $((SECONDS - start)) s"
	return "$status"
}

step "build the tests (not timed below)"
cargo nextest list --locked "${crates[@]}" >/dev/null

step "nothing set up: one server for the whole run, removed afterwards"
dir=$work/state-nothing
INSFORGE_RLS_STATE_DIR=$dir timed "cargo nextest run ${crates[*]} (nothing set up)" \
	cargo nextest run --locked "${crates[@]}"
expect_servers 1 "a run with nothing set up"
nothing_left "$dir"

step "two --partition shards side by side: each its own server"
dir=$work/state-shards
pids=()
for shard in 1 2; do
	INSFORGE_RLS_STATE_DIR=$dir cargo nextest run --locked -p harness --partition "count:$shard/2" \
		>"$work/shard-$shard.log" 2>&1 &
	pids+=($!)
done
for shard in 1 2; do
	status=0
	wait "${pids[$((shard - 1))]}" || status=$?
	grep -E '^ +Summary' "$work/shard-$shard.log"
	[[ $status == 0 ]] || { cat "$work/shard-$shard.log" >&2; echo "shard $shard/2 failed" >&2; exit 1; }
done
expect_servers 2 "two shards"
nothing_left "$dir"

step "after cargo xtask setup: the run uses setup's server"
dir=$work/state-setup
export INSFORGE_RLS_STATE_DIR=$dir
cargo xtask setup --backend local >"$work/setup.txt"
head -n 1 "$work/setup.txt"
timed "cargo nextest run ${crates[*]} (after setup)" cargo nextest run --locked "${crates[@]}"
expect_servers 0 "a run after setup"
cargo xtask teardown >/dev/null
[[ ! -e $dir/state.json ]]
unset INSFORGE_RLS_STATE_DIR

step "nextest archive in one checkout, run from a moved copy (--workspace-remap)"
# A copy of the sources (tracked and new files), built and archived there, then moved: any
# path fixed at compile time would point at a folder that no longer exists.
built=$work/checkout-built
moved=$work/checkout-moved
mkdir -p "$built"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$built"
(cd "$built" && CARGO_TARGET_DIR=$root/target cargo nextest archive --locked -p harness \
	--archive-file "$work/harness.tar.zst")
mv "$built" "$moved"
[[ ! -e $built ]]
cargo nextest run --archive-file "$work/harness.tar.zst" --workspace-remap "$moved"
expect_servers 1 "the archived run"
# The state went to the moved checkout's target/ (found at run time), and nothing is left.
[[ -d $moved/target/insforge-rls ]] || { echo "no state folder under the moved checkout" >&2; exit 1; }
nothing_left "$moved/target/insforge-rls"

step "nextest checks passed"
