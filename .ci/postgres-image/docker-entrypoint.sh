#!/usr/bin/env bash
# Entrypoint of the locally built insforge-rls/postgres:15-debian image (built by .ci/postgres-image.sh).
# Behaves like the official postgres image's entrypoint for what tools use: POSTGRES_* settings, first-run initdb, exec postgres.
set -Eeuo pipefail

die() {
	printf 'docker-entrypoint: error: %s\n' "$*" >&2
	exit 1
}

# read_setting NAME [DEFAULT]: takes NAME from the environment or from the file named by NAME_FILE (Docker secrets).
read_setting() {
	local name=$1 default=${2:-}
	local file_name="${name}_FILE"
	local value=${!name:-} file=${!file_name:-}
	if [[ -n $value && -n $file ]]; then
		die "both $name and $file_name are set, but they are exclusive: set only one of them"
	fi
	if [[ -n $file ]]; then
		value=$(<"$file")
	fi
	export "$name=${value:-$default}"
	unset "$file_name"
}

# True when the arguments ask postgres for help or its version only (no server start, no initialisation).
wants_help() {
	local arg
	for arg; do
		case $arg in
		'-?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

# As root: create PGDATA and the socket directory and hand them to the postgres user.
prepare_directories() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA" || true
	chmod 3775 /var/run/postgresql || true
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		chmod 0700 "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" ! -user postgres -exec chown postgres: '{}' +
	fi
	find "$PGDATA" /var/run/postgresql ! -user postgres -exec chown postgres: '{}' +
}

# Refuses an uninitialised database without a superuser password unless trust was asked for explicitly.
check_minimum_settings() {
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		cat >&2 <<-'EOF'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOF
		exit 1
	fi
	if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
		cat >&2 <<-'EOF'
			********************************************************************************
			WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
			         anyone with access to the Postgres port to access your database without
			         a password, even if POSTGRES_PASSWORD is set.
			********************************************************************************
		EOF
	fi
}

# initdb into the empty PGDATA with POSTGRES_USER as superuser, then open it to TCP clients.
init_data_directory() {
	local -a initdb_args=() extra_args=()
	if [[ -n $POSTGRES_INITDB_ARGS ]]; then
		# Like the official image: POSTGRES_INITDB_ARGS is shell-quoted text, e.g. "--data-checksums --locale=C".
		eval "extra_args=( $POSTGRES_INITDB_ARGS )"
	fi
	initdb_args=(--pgdata="$PGDATA" --username="$POSTGRES_USER")
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	if [[ -n $POSTGRES_PASSWORD ]]; then
		initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra_args[@]}"
	else
		initdb "${initdb_args[@]}" "${extra_args[@]}"
	fi
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
}

# Appends the rule for TCP clients from any host; the method defaults to the server's password_encryption.
set_host_auth_rule() {
	local method=$POSTGRES_HOST_AUTH_METHOD
	if [[ -z $method ]]; then
		method=$(postgres -C password_encryption "$@")
	fi
	{
		printf '\n'
		if [[ $method == trust ]]; then
			printf '# warning: trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$method"
	} >>"$PGDATA/pg_hba.conf"
}

# A server on the unix socket only, for creating the database and running init scripts.
start_temporary_server() {
	local options
	options=$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")
	PGUSER=${PGUSER:-$POSTGRES_USER} pg_ctl -D "$PGDATA" -o "$options" -w start
}

stop_temporary_server() {
	PGUSER=${PGUSER:-$POSTGRES_USER} pg_ctl -D "$PGDATA" -m fast -w stop
}

# run_sql DATABASE [psql args]: runs SQL against the temporary server as POSTGRES_USER over the unix socket.
run_sql() {
	local database=$1
	shift
	PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
		--username "$POSTGRES_USER" --dbname "$database" "$@"
}

create_database() {
	run_sql postgres --set db="$POSTGRES_DB" <<-'EOSQL'
		SELECT format('CREATE DATABASE %I', :'db')
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
	EOSQL
}

# Runs /docker-entrypoint-initdb.d/* like the official image: *.sh (run if executable, else sourced), *.sql[.gz|.xz|.zst].
run_init_files() {
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[[ -e $f ]] || continue
		case $f in
		*.sh)
			if [[ -x $f ]]; then
				printf 'docker-entrypoint: running %s\n' "$f"
				"$f"
			else
				printf 'docker-entrypoint: sourcing %s\n' "$f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql) printf 'docker-entrypoint: running %s\n' "$f" && run_sql "$POSTGRES_DB" -f "$f" ;;
		*.sql.gz) printf 'docker-entrypoint: running %s\n' "$f" && gunzip -c "$f" | run_sql "$POSTGRES_DB" ;;
		*.sql.xz) printf 'docker-entrypoint: running %s\n' "$f" && xzcat "$f" | run_sql "$POSTGRES_DB" ;;
		*.sql.zst) printf 'docker-entrypoint: running %s\n' "$f" && zstd -dc "$f" | run_sql "$POSTGRES_DB" ;;
		*) printf 'docker-entrypoint: ignoring %s\n' "$f" ;;
		esac
	done
}

main() {
	if [[ $# -eq 0 ]]; then
		set -- postgres
	fi
	# A first argument that looks like an option is an option for postgres ("-c fsync=off").
	if [[ ${1:0:1} == - ]]; then
		set -- postgres "$@"
	fi
	if [[ $1 != postgres ]] || wants_help "$@"; then
		exec "$@"
	fi

	export PGDATA=${PGDATA:-/var/lib/postgresql/data}
	read_setting POSTGRES_PASSWORD
	read_setting POSTGRES_USER postgres
	read_setting POSTGRES_DB "$POSTGRES_USER"
	read_setting POSTGRES_INITDB_ARGS
	export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-}

	if [[ $(id -u) == 0 ]]; then
		prepare_directories
		export HOME=/var/lib/postgresql
		# Start again as the postgres user; setpriv comes with util-linux, which every Debian system has.
		exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
	fi

	if [[ -s $PGDATA/PG_VERSION ]]; then
		printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
	else
		check_minimum_settings
		init_data_directory
		shift # "postgres": the rest are server options, e.g. -c fsync=off
		set_host_auth_rule "$@"
		# Needed by psql only when POSTGRES_INITDB_ARGS asked for password auth on the local socket.
		export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
		start_temporary_server "$@"
		create_database
		run_init_files
		stop_temporary_server
		unset PGPASSWORD
		set -- postgres "$@"
		printf '\nPostgreSQL init process complete; ready for start up.\n\n'
	fi

	exec "$@"
}

main "$@"
