#!/bin/sh
# Reads secrets from files: for each variable below, VAR_FILE=/path sets VAR to that file's
# content (trailing newline removed), so compose secrets never appear in `docker inspect`.
# Then runs the command (`python -m tapedeck_<service>`) in place of this shell.
set -eu
for name in DATABASE_URL BACKTEST_DATABASE_URL WALLETS_DATABASE_URL LIVE_DATABASE_URL \
            REDIS_URL WALLETS_REDIS_URL TAPEDECK_SERVICE_TOKEN; do
  eval "file=\${${name}_FILE:-}"
  if [ -n "$file" ]; then
    eval "set_already=\${${name}+x}"
    if [ -n "$set_already" ]; then
      echo "docker-entrypoint: both $name and ${name}_FILE are set; set one" >&2
      exit 2
    fi
    if [ ! -r "$file" ]; then
      echo "docker-entrypoint: ${name}_FILE=$file is not a readable file" >&2
      exit 2
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
  fi
done
exec "$@"
