#!/bin/sh
# PostgreSQL from Debian's package, in the named volume: initialised on the first
# start (the superuser's password from the db_password secret), then run as the
# postgres user.
set -eu
bin=$(echo /usr/lib/postgresql/*/bin)
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    install -o postgres -m 600 /run/secrets/db_password /tmp/pwfile
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$bin/initdb" -D "$PGDATA" -U app --pwfile=/tmp/pwfile --auth-host=scram-sha-256 \
        --auth-local=trust >/dev/null
    rm /tmp/pwfile
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
    -c dynamic_shared_memory_type=mmap
