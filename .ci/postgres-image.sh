#!/usr/bin/env bash
# Builds the Docker image insforge-rls/postgres:15-debian from Debian packages (debootstrap + docker import), for
# machines that cannot pull any container image. Reuses the image when it exists. Usage: .ci/postgres-image.sh [--force]
set -euo pipefail

readonly IMAGE=${CI_POSTGRES_IMAGE:-insforge-rls/postgres:15-debian}
readonly ROOTFS_IMAGE=$IMAGE-rootfs
readonly SUITE=bookworm
readonly PG_MAJOR=15
readonly STATE_DIR=${CI_STATE_DIR:-/tmp/insforge-rls-ci}
HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly ENTRYPOINT_SRC=$HERE/postgres-image/docker-entrypoint.sh

say() { printf 'postgres-image: %s\n' "$*"; }
die() {
	printf 'postgres-image: error: %s\n' "$*" >&2
	exit 1
}

# "URI SUITE" for every enabled Debian "deb" source of this machine's apt (deb822 .sources and one-line .list files).
apt_source_pairs() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk '
			BEGIN { RS = ""; FS = "\n" }
			{
				delete v; key = ""
				for (i = 1; i <= NF; i++) {
					line = $i
					if (line ~ /^#/) continue
					if (line ~ /^[ \t]/ && key != "") { v[key] = v[key] " " line; continue }
					if (match(line, /^[A-Za-z-]+:/)) {
						key = tolower(substr(line, 1, RLENGTH - 1))
						v[key] = substr(line, RLENGTH + 1)
					}
				}
				if (tolower(v["enabled"]) ~ /no/) next
				if ((" " v["types"] " ") !~ /[ \t]deb[ \t]/) next
				nu = split(v["uris"], uris, /[ \t]+/); ns = split(v["suites"], suites, /[ \t]+/)
				for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
					if (uris[u] != "" && suites[s] != "") print uris[u], suites[s]
			}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		awk '
			$1 != "deb" { next }
			{
				i = 2
				if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
				if (i + 1 <= NF) print $i, $(i + 1)
			}' "$f"
	done
}

# URI of the first apt source for the given suite, e.g. "bookworm-security"; empty when none.
source_for_suite() {
	local suite=$1 uri s
	while read -r uri s; do
		if [[ $s == "$suite" && $uri == http* ]]; then
			printf '%s\n' "${uri%/}"
			return 0
		fi
	done < <(apt_source_pairs)
}

apt_updated=false
apt_install() {
	if [[ $apt_updated == false ]]; then
		say "apt-get update"
		apt-get update -qq || die "apt-get update failed; check this machine's apt sources and network, then run again"
		apt_updated=true
	fi
	say "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		die "apt-get install $* failed; run it by hand to see why"
}

# Hash of everything that goes into the image, kept as a label so a changed recipe is rebuilt.
recipe_hash() {
	cat "${BASH_SOURCE[0]}" "$ENTRYPOINT_SRC" | sha256sum | cut -c1-16
}

rootfs=''
cleanup() {
	local m
	if [[ -n $rootfs && -d $rootfs ]]; then
		for m in proc sys dev/pts dev; do
			if mountpoint -q "$rootfs/$m"; then umount -l "$rootfs/$m" || true; fi
		done
		rm -rf --one-file-system "$rootfs"
	fi
}

# Runs a command inside the rootfs with a clean environment.
in_root() {
	chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# Dockerfile that puts the image settings on top of the imported rootfs.
image_settings() {
	cat <<-EOF
		FROM $ROOTFS_IMAGE
		ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/postgresql/$PG_MAJOR/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
		    PG_MAJOR=$PG_MAJOR PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
		LABEL org.insforge-rls.recipe=$1
		ENTRYPOINT ["docker-entrypoint.sh"]
		CMD ["postgres"]
		EXPOSE 5432
		STOPSIGNAL SIGINT
	EOF
}

build() {
	local hash=$1 mirror updates security started=$SECONDS
	local -a include=()

	command -v debootstrap >/dev/null || apt_install debootstrap

	mirror=${CI_DEBIAN_MIRROR:-$(source_for_suite "$SUITE")}
	[[ -n $mirror ]] || die "found no Debian '$SUITE' source in /etc/apt/sources.list{,.d/*}; add one (or set CI_DEBIAN_MIRROR to a Debian mirror URL) and run again"
	updates=$(source_for_suite "$SUITE-updates")
	security=$(source_for_suite "$SUITE-security")

	rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/insforge-rls-pg-rootfs.XXXXXX")
	trap cleanup EXIT

	# apt inside the rootfs needs CA certificates for an https mirror.
	if [[ $mirror == https:* ]]; then include=(--include=ca-certificates); fi
	say "debootstrap --variant=minbase $SUITE (mirror taken from this machine's apt sources)"
	debootstrap --variant=minbase "${include[@]}" "$SUITE" "$rootfs" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 || {
		tail -n 20 "$STATE_DIR/debootstrap.log" >&2
		die "debootstrap failed (full log: $STATE_DIR/debootstrap.log); check that apt can reach the mirror ('apt-get update')"
	}

	{
		printf 'deb %s %s main\n' "$mirror" "$SUITE"
		if [[ -n $updates ]]; then printf 'deb %s %s-updates main\n' "$updates" "$SUITE"; fi
		if [[ -n $security ]]; then printf 'deb %s %s-security main\n' "$security" "$SUITE"; fi
	} >"$rootfs/etc/apt/sources.list"
	# No docs in packages installed from here on, no services started, and no "main" cluster made by postgresql-common.
	cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-insforge-rls-nodoc" <<-'EOF'
		path-exclude=/usr/share/doc/*
		path-exclude=/usr/share/man/*
		path-exclude=/usr/share/info/*
		path-exclude=/usr/share/locale/*
	EOF
	printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
	chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
	mkdir -p "$rootfs/etc/postgresql-common/createcluster.d"
	printf 'create_main_cluster = false\n' >"$rootfs/etc/postgresql-common/createcluster.d/insforge-rls.conf"

	say "apt-get install postgresql-$PG_MAJOR in the rootfs"
	mount -t proc proc "$rootfs/proc"
	{
		in_root apt-get update -qq &&
			in_root apt-get install -y -qq --no-install-recommends "postgresql-$PG_MAJOR" &&
			in_root apt-get clean
	} >"$STATE_DIR/postgres-image-apt.log" 2>&1 || {
		tail -n 20 "$STATE_DIR/postgres-image-apt.log" >&2
		die "installing postgresql-$PG_MAJOR into the rootfs failed (full log: $STATE_DIR/postgres-image-apt.log)"
	}
	umount "$rootfs/proc"

	# JIT: LLVM is a third of the image and tests do not need it. Without llvmjit.so, postgres silently runs with
	# JIT unavailable (pg_jit_available() is false) instead of failing on a missing libLLVM.
	in_root dpkg --purge --force-depends libllvm14 libz3-4 >>"$STATE_DIR/postgres-image-apt.log" 2>&1
	rm -rf "$rootfs/usr/lib/postgresql/$PG_MAJOR/lib/"{llvmjit.so,llvmjit_types.bc,bitcode}

	install -m 0755 "$ENTRYPOINT_SRC" "$rootfs/usr/local/bin/docker-entrypoint.sh"
	ln -sf usr/local/bin/docker-entrypoint.sh "$rootfs/docker-entrypoint.sh"
	mkdir -p "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/lib/postgresql/data"
	in_root chown postgres:postgres /var/lib/postgresql/data
	chmod 0700 "$rootfs/var/lib/postgresql/data"
	rm -rf "$rootfs"/usr/share/{doc,man,info,locale}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
		"$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* \
		"$rootfs/usr/sbin/policy-rc.d" "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"

	# docker import cannot set STOPSIGNAL (Docker 20.10), so the import only makes the filesystem layer and a
	# Dockerfile with no context (nothing to pull: its base is the local import) adds the image settings.
	say "docker import ($(du -sh --one-file-system "$rootfs" | cut -f1) rootfs) and docker build -> $IMAGE"
	tar --numeric-owner --xattrs -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
		docker import --message "Debian $SUITE minbase + postgresql-$PG_MAJOR (.ci/postgres-image.sh)" - "$ROOTFS_IMAGE" >/dev/null
	image_settings "$hash" | DOCKER_BUILDKIT=0 docker build --quiet --tag "$IMAGE" - >/dev/null 2>"$STATE_DIR/postgres-image-build.log" || {
		cat "$STATE_DIR/postgres-image-build.log" >&2
		die "docker build of $IMAGE failed (see the lines above)"
	}
	# Only drops the tag: the layer stays as the parent of $IMAGE.
	docker image rm "$ROOTFS_IMAGE" >/dev/null

	local version
	# (stderr to the log: Docker warns there about the --ip-forward=false of .ci/docker-engine.sh)
	version=$(docker run --rm "$IMAGE" postgres --version 2>>"$STATE_DIR/postgres-image-build.log") || {
		cat "$STATE_DIR/postgres-image-build.log" >&2
		die "the new image $IMAGE does not run (see the lines above)"
	}
	say "check: $version"
	say "built $IMAGE in $((SECONDS - started)) s"
}

main() {
	local force=false hash existing old_id
	case ${1:-} in
	'') ;;
	--force) force=true ;;
	*) die "unknown argument '$1'; usage: $0 [--force]" ;;
	esac

	[[ $(id -u) == 0 ]] || die "must run as root (debootstrap and chroot need it); run it with sudo"
	docker info >/dev/null 2>&1 || die "Docker does not answer; start it first with: $HERE/docker-engine.sh start"
	[[ -r $ENTRYPOINT_SRC ]] || die "missing $ENTRYPOINT_SRC; restore it from git"
	mkdir -p "$STATE_DIR"

	# One build at a time on this machine.
	exec 9>"$STATE_DIR/postgres-image.lock"
	flock 9

	hash=$(recipe_hash)
	existing=$(docker image inspect --format '{{ index .Config.Labels "org.insforge-rls.recipe" }}' "$IMAGE" 2>/dev/null || true)
	if [[ $force == false && $existing == "$hash" ]]; then
		say "$IMAGE is up to date (recipe $hash); reusing it"
		return 0
	fi
	old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
	if [[ -n $old_id && $force == false ]]; then
		say "$IMAGE exists but was built from another recipe (${existing:-none}, now $hash); rebuilding"
	fi
	build "$hash"
	# The replaced image, unless a container still uses it.
	if [[ -n $old_id && $old_id != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
		docker image rm "$old_id" >/dev/null 2>&1 || true
	fi
}

main "$@"
