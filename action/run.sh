#!/usr/bin/env bash
# The shell steps of the insforge-rls GitHub Action (action.yml at the repository root), one
# subcommand per step, so that they can be run — and tested — outside GitHub:
#
#   run.sh resolve   the tool's version, cache key and install root  → $GITHUB_OUTPUT, $GITHUB_PATH
#   run.sh install   cargo install --locked the `insforge-rls` command into the install root
#   run.sh postgres  make sure the runner's PostgreSQL binaries of the asked version are there
#   run.sh check     run the check, writing SARIF, JUnit and markdown; the summary → $GITHUB_STEP_SUMMARY
#   run.sh verdict   fail the job when the check found leaks or lost access
#
# Inputs arrive as INPUT_* variables (action.yml sets them); GitHub's own variables are read as
# GitHub sets them: GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STEP_SUMMARY, GITHUB_WORKSPACE, RUNNER_TEMP.
#
# The command line of insforge-rls this relies on (and nothing more):
#   insforge-rls check [--spec FILE] [--migrations DIR] --format markdown --output FILE
#                      --sarif FILE --junit FILE      (every report written, even when it fails)
#     exit 0: clean, 1: leaks (or a denied lint finding), 3: lost access without a leak,
#     4: a policy clause or branch no cell exercised, anything else (2): the check could not run
#   insforge-rls setup / insforge-rls teardown   (url backend only; configured by the
#     INSFORGE_RLS_BACKEND, INSFORGE_RLS_DATABASE_URL and INSFORGE_RLS_PG_BINDIR variables)
set -euo pipefail

# Workflow commands (::error::, ::add-mask::) are read from standard output.
die() {
	echo "::error title=insforge-rls::$*"
	exit 2
}

need() {
	[[ -n ${!1:-} ]] || die "$1 is not set (run.sh runs as a step of the insforge-rls action, or with GitHub's variables set)"
}

out() { # name value
	need GITHUB_OUTPUT
	printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"
}

install_root() {
	need RUNNER_TEMP
	printf '%s\n' "${INSFORGE_RLS_INSTALL_ROOT:-$RUNNER_TEMP/insforge-rls-tool}"
}

report_dir() {
	need RUNNER_TEMP
	printf '%s\n' "$RUNNER_TEMP/insforge-rls"
}

# The repository to install from: the input, else this action's own repository.
repository() {
	if [[ -n ${INPUT_REPOSITORY:-} ]]; then
		printf '%s\n' "$INPUT_REPOSITORY"
	elif [[ -n ${ACTION_REPOSITORY:-} ]]; then
		printf '%s\n' "${GITHUB_SERVER_URL:-https://github.com}/$ACTION_REPOSITORY"
	fi
}

# The tool's version: the input, else the ref this action was used at.
version() {
	printf '%s\n' "${INPUT_VERSION:-${ACTION_REF:-}}"
}

# A digest of what `cargo install --path` builds from: the lock file and every crate's files.
source_digest() {
	(
		cd "$1" || exit
		local paths=() p
		for p in Cargo.toml Cargo.lock crates migrations; do
			[[ ! -e $p ]] || paths+=("$p")
		done
		((${#paths[@]})) || die "nothing to install in $1 (no Cargo.toml, Cargo.lock or crates/)"
		find "${paths[@]}" -type f -not -path '*/target/*' -print0 |
			LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
	)
}

cmd_resolve() {
	local root version repo key
	root=$(install_root)
	version=$(version)
	repo=$(repository)
	if [[ -n $version && -n $repo && ! $version =~ ^[0-9a-f]{40}$ ]]; then
		# A branch or tag moves or may move: key the cache by the commit it names now.
		local sha
		sha=$(git ls-remote "$repo" "$version" "refs/tags/$version^{}" 2>/dev/null | awk 'NR==1 {print $1}') || true
		key_version=${sha:-$version}
	else
		key_version=$version
	fi
	if [[ -z ${key_version:-} ]]; then
		# Installed from the action's own files (used as `./`, say): keyed by their content.
		need GITHUB_ACTION_PATH
		key_version=path-$(source_digest "$GITHUB_ACTION_PATH")
	fi
	key="insforge-rls-${RUNNER_OS:-local}-${RUNNER_ARCH:-any}-$key_version"
	out root "$root"
	out key "$key"
	out version "$version"
	if [[ -n ${GITHUB_PATH:-} ]]; then
		printf '%s\n' "$root/bin" >>"$GITHUB_PATH"
	fi
	local shown=${version:-"the action checkout"}
	echo "insforge-rls: version $shown, cache key $key"
}

cmd_install() {
	local root version repo
	root=$(install_root)
	version=$(version)
	repo=$(repository)
	command -v cargo >/dev/null || die "cargo is not on PATH: add a Rust toolchain step (dtolnay/rust-toolchain@stable) before this action"
	local args=(install --locked --root "$root")
	if [[ -n $repo ]]; then
		args+=(--git "$repo")
		if [[ $version =~ ^[0-9a-f]{7,40}$ ]]; then
			args+=(--rev "$version")
		elif [[ -n $version ]] && git ls-remote --exit-code --heads "$repo" "$version" >/dev/null 2>&1; then
			args+=(--branch "$version")
		elif [[ -n $version ]]; then
			args+=(--tag "$version")
		fi
		args+=(insforge-rls)
	else
		need GITHUB_ACTION_PATH
		args+=(--path "$GITHUB_ACTION_PATH/crates/insforge-rls")
	fi
	echo "+ cargo ${args[*]}"
	cargo "${args[@]}"
}

cmd_postgres() {
	if [[ -n ${INPUT_DATABASE_URL:-} ]]; then
		echo "insforge-rls: using the database-url server (url backend)"
		return 0
	fi
	local v=${INPUT_POSTGRES_VERSION:-16}
	local bindir=/usr/lib/postgresql/$v/bin
	if [[ ! -x $bindir/initdb ]]; then
		local sudo=()
		[[ $(id -u) == 0 ]] || sudo=(sudo)
		echo "insforge-rls: installing postgresql-$v"
		# The package lists of a fresh runner may be stale: update once when the install fails.
		"${sudo[@]}" apt-get install -y -q "postgresql-$v" >/dev/null 2>&1 ||
			{ "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q "postgresql-$v" >/dev/null; } ||
			die "PostgreSQL $v is not installed and apt-get cannot install postgresql-$v here — use the runner's version (ubuntu-24.04: 16) or a service container with the database-url input"
	fi
	[[ -x $bindir/initdb ]] || die "no initdb in $bindir after installing postgresql-$v"
	# The check starts its own throwaway server from these binaries on a free port (the local
	# backend); a running system service does not get in its way.
	echo "insforge-rls: PostgreSQL $v binaries in $bindir"
}

# The check ran (clean, or with findings), as opposed to could not run.
findings_or_clean() {
	[[ $1 == 0 || $1 == 1 || $1 == 3 || $1 == 4 ]]
}

cmd_check() {
	need GITHUB_STEP_SUMMARY
	local dir
	dir=$(report_dir)
	mkdir -p "$dir"
	# Relative paths (the working directory, spec, migrations) start at the repository.
	if [[ -n ${GITHUB_WORKSPACE:-} ]]; then
		cd "$GITHUB_WORKSPACE"
	fi
	if [[ -n ${INPUT_WORKING_DIRECTORY:-} ]]; then
		cd "$INPUT_WORKING_DIRECTORY" || die "working-directory $INPUT_WORKING_DIRECTORY does not exist in $PWD"
	fi
	command -v insforge-rls >/dev/null || die "insforge-rls is not on PATH (the install step puts it in $(install_root)/bin)"

	local common=(check)
	[[ -z ${INPUT_SPEC:-} ]] || common+=(--spec "$INPUT_SPEC")
	[[ -z ${INPUT_MIGRATIONS:-} ]] || common+=(--migrations "$INPUT_MIGRATIONS")

	local setup_done=false
	if [[ -n ${INPUT_DATABASE_URL:-} ]]; then
		echo "::add-mask::$INPUT_DATABASE_URL"
		export INSFORGE_RLS_BACKEND=url INSFORGE_RLS_DATABASE_URL=$INPUT_DATABASE_URL
		insforge-rls setup || die "insforge-rls setup on the database-url server failed"
		setup_done=true
	else
		export INSFORGE_RLS_BACKEND=local
		local bindir=/usr/lib/postgresql/${INPUT_POSTGRES_VERSION:-16}/bin
		[[ ! -d $bindir ]] || export INSFORGE_RLS_PG_BINDIR=$bindir
	fi

	# One run writes the three reports: SARIF and JUnit beside the markdown it prints to a file.
	local code=0 format file
	insforge-rls "${common[@]}" --format markdown --output "$dir/check.md" \
		--sarif "$dir/check.sarif" --junit "$dir/check.xml" || code=$?
	if findings_or_clean "$code"; then
		for format in sarif junit markdown; do
			case $format in
			sarif) file=$dir/check.sarif ;;
			junit) file=$dir/check.xml ;;
			markdown) file=$dir/check.md ;;
			esac
			[[ -s $file ]] || die "insforge-rls check wrote no $format report to $file (exit $code)"
			out "$format" "$file"
		done
	fi
	if $setup_done; then
		insforge-rls teardown || echo "::warning title=insforge-rls::teardown failed"
	fi
	out exit-code "$code"
	if ! findings_or_clean "$code"; then
		{
			echo "## insforge-rls check could not run"
			echo
			echo "Exit status $code: see the step's log for why."
		} >>"$GITHUB_STEP_SUMMARY"
		die "insforge-rls check could not run (exit $code)"
	fi
	cat "$dir/check.md" >>"$GITHUB_STEP_SUMMARY"
	cat "$dir/check.md"
	if ((code != 0)); then
		echo "::error title=insforge-rls::the check found leaks, lost access or untested policies — see the job summary and code scanning"
	fi
}

cmd_verdict() {
	local code=${CHECK_EXIT_CODE:-}
	[[ -n $code ]] || die "the check step left no exit code"
	if [[ $code != 0 && ${INPUT_FAIL_ON_FINDINGS:-true} == true ]]; then
		echo "insforge-rls: the check failed (exit $code)"
		exit "$code"
	fi
	echo "insforge-rls: exit $code"
}

case ${1:-} in
resolve | install | postgres | check | verdict) "cmd_$1" ;;
*) die "usage: run.sh resolve|install|postgres|check|verdict" ;;
esac
