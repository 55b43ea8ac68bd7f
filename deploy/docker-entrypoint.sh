#!/bin/sh
# Reads secrets from files: for each variable below, VAR_FILE=/path sets VAR to that file's
# content (trailing newline removed), so compose secrets never appear in `docker inspect`.
# The backtest service with BACKTEST_EXECUTOR=ray and a cluster's address (BACKTEST_RAY_ADDRESS or
# RAY_ADDRESS; without one it starts a Ray of its own) first joins that cluster as a node with no
# CPU for runs (a Ray driver must run on a node of its cluster; this node holds only the pool's
# channel actor). Then runs the command (`python -m tapedeck_<service>`) in place of this shell.
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
address=${BACKTEST_RAY_ADDRESS:-${RAY_ADDRESS:-}}
if [ "${BACKTEST_EXECUTOR:-local}" = ray ] && [ -n "$address" ]; then
  ray start --address="$address" --num-cpus=0 --disable-usage-stats
fi
exec "$@"
