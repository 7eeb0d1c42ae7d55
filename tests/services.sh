#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback: start them, or install them, if not.
set -eu
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 5432; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
    version=$(ls /etc/postgresql | sort -V | tail -1)
    # Test-only server on loopback: trust local TCP, as the service machines do.
    sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 50); do up 5432 && break; sleep 0.2; done
fi
if ! up 6379; then
  command -v redis-server >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/flotilla.log
  for _ in $(seq 50); do up 6379 && break; sleep 0.2; done
fi
up 5432 || { echo "PostgreSQL is not answering on 127.0.0.1:5432"; exit 1; }
up 6379 || { echo "Redis is not answering on 127.0.0.1:6379"; exit 1; }
