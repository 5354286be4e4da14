#!/usr/bin/env bash
# A real one-node SLURM cluster (with accounting) on this machine, for tests and CI.
#
# Usage: scripts/slurm_cluster.sh {install|start|stop|status|env}
#   install  apt-get install munge slurmctld slurmd slurm-client slurmdbd mariadb-server
#            (quiet; a no-op when they are already installed). Needs root.
#   start    write every configuration file under the state folder, start munged, mariadbd,
#            slurmdbd, slurmctld and slurmd as background processes (pids recorded), register the
#            cluster/account in the accounting database, wait until the node is idle.
#            Idempotent: if the cluster is already up it says so and exits 0. A stale state
#            folder (dead daemons, leftover pid files/sockets) is cleaned up and restarted.
#            Exits non-zero with a clear message (and the failing daemon's log tail) when SLURM
#            cannot be started.
#   stop     cancel the cluster's jobs, then stop exactly the recorded pids (never by name) and
#            wait until they are gone. Idempotent.
#   status   print the state (daemons, node, KEY=VALUE lines); exit 0 if up, 3 if down,
#            1 if partly up.
#   env      print `export SLURM_CONF=...` for this cluster: eval "$(scripts/slurm_cluster.sh env)"
#
# Environment:
#   SLURM_STATE_DIR      root of the state folders (default /var/lib/autonuma-slurm); the cluster
#                        lives in $SLURM_STATE_DIR/$SLURM_CLUSTER_NAME (one folder per cluster
#                        name: slurmctld refuses a StateSaveLocation written under another name).
#                        The root must be a real directory (no symlink anywhere on the path)
#                        owned by the user running this script and writable by nobody else; it
#                        is created so (mode 0711) when absent, and the script refuses to use it
#                        otherwise. Never point it at a shared temporary folder that others can
#                        prepare: the daemons run as root and load keys and configs from it.
#   SLURM_CLUSTER_NAME   cluster name (default autonuma; lower case letters, digits, _).
#   SLURM_PORT_BASE      slurmctld port; slurmd, slurmdbd, mariadb use the next three
#                        (default 6817 -> 6817..6820). Everything listens on / points at localhost.
#   SLURM_NODE_CPUS      CPUs the node advertises (default: nproc).
#   SLURM_START_TIMEOUT  seconds to wait for each daemon (default 60).
set -euo pipefail

CLUSTER="${SLURM_CLUSTER_NAME:-autonuma}"
ROOT="${SLURM_STATE_DIR:-/var/lib/autonuma-slurm}"
STATE="$ROOT/$CLUSTER"
PORT_BASE="${SLURM_PORT_BASE:-6817}"
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
DB_PORT=$((PORT_BASE + 3))
TIMEOUT="${SLURM_START_TIMEOUT:-60}"
ACCOUNT=autonuma
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # start order; stopped in reverse

ETC="$STATE/etc" LOG="$STATE/log" RUN="$STATE/run" PIDS="$STATE/pids"
CONF="$ETC/slurm.conf"
MUNGE_SOCK="$RUN/munge.sock"
DB_SOCK="$RUN/mysqld.sock"
DB_DIR="$STATE/mysql"

say() { echo "slurm_cluster: $*"; }
die() { echo "slurm_cluster: ERROR: $*" >&2; exit 1; }

# --------------------------------------------------------------------------------------------
# A private state folder. Everything the root daemons trust (munge.key, slurmdbd.conf with the
# database password, slurm.conf, the spool) lives under $ROOT, so nobody but us may be able to
# create, replace or redirect anything there: each directory on the way must be a real directory
# (not a symlink), owned by us, not writable by group or others. We create missing ones with
# mkdir (no -p, so an existing name planted a moment earlier makes it fail, not follow).

# owner uid and octal mode of $1 without following a final symlink
stat_of() { stat -c '%u %a' -- "$1" 2>/dev/null; }

check_private_dir() {   # check_private_dir <dir>: refuse a symlink, a foreign owner, g/o write
  local d=$1 st uid mode
  [ ! -L "$d" ] || die "$d is a symlink; refusing to use it as a state folder (remove it or set SLURM_STATE_DIR)"
  [ -d "$d" ] || die "$d exists and is not a directory"
  st=$(stat_of "$d") || die "cannot stat $d"
  uid=${st% *} mode=${st#* }
  [ "$uid" = "$(id -u)" ] || die "$d is owned by uid $uid, not by us (uid $(id -u)); refusing to use it (remove it or set SLURM_STATE_DIR)"
  (( (8#$mode & 8#022) == 0 )) || die "$d is writable by group or others (mode $mode); refusing to use it (chmod go-w it or remove it)"
}

make_private_dir() {    # make_private_dir <dir> [mode]: create (if absent) and check
  local d=$1 mode=${2:-700}
  if [ ! -e "$d" ] && [ ! -L "$d" ]; then
    mkdir -m "$mode" -- "$d" 2>/dev/null || [ -d "$d" ] || die "cannot create $d"
  fi
  check_private_dir "$d"
}

# The root and its parents: every existing ancestor must be a real directory; an ancestor that
# others may write to must carry the sticky bit (as /tmp does), so what we create there stays ours.
prepare_root() {
  local path="" part st mode
  case "$ROOT" in /*) ;; *) die "SLURM_STATE_DIR must be an absolute path (got '$ROOT')" ;; esac
  local IFS=/
  for part in ${ROOT#/}; do
    [ -n "$part" ] || continue
    path="$path/$part"
    [ "$path" = "$ROOT" ] && break
    [ -e "$path" ] || { mkdir -m 755 -- "$path" 2>/dev/null || [ -d "$path" ] || die "cannot create $path"; }
    [ ! -L "$path" ] || die "$path (on the way to $ROOT) is a symlink; refusing it"
    st=$(stat_of "$path") || die "cannot stat $path"
    mode=${st#* }
    if (( (8#$mode & 8#002) != 0 && (8#$mode & 8#1000) == 0 )); then
      die "$path (on the way to $ROOT) is world-writable without the sticky bit; refusing it"
    fi
  done
  unset IFS
  # munged insists that every component of its socket path is searchable (+x) by all: 0711.
  make_private_dir "$ROOT" 711
  chmod 711 -- "$ROOT"
}

case "$CLUSTER" in *[!a-z0-9_]* | "") die "SLURM_CLUSTER_NAME '$CLUSTER' must match [a-z0-9_]+" ;; esac

# Every SLURM command below reads this configuration; so do the daemons (slurmdbd finds
# slurmdbd.conf next to it).
export SLURM_CONF="$CONF"
unset SLURM_JOB_ID SLURM_JOBID   # when called from inside a job, do not confuse the clients

# --------------------------------------------------------------------------------------------
# pids

pidfile() { echo "$PIDS/$1.pid"; }

# The recorded pid of daemon $1 if that process is alive and really is our daemon (its name
# matches and it was started for this state folder), else nothing.
live_pid() {
  local name=$1 f pid
  f=$(pidfile "$name")
  [ -f "$f" ] || return 1
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # a zombie is as good as dead
  [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  grep -qzxF "AUTONUMA_SLURM_STATE=$STATE" "/proc/$pid/environ" 2>/dev/null || return 1
  echo "$pid"
}

pid_running() {   # a process that exists and is not a zombie
  [[ ${1:-} =~ ^[0-9]+$ ]] && [ -r "/proc/$1/stat" ] &&
    [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Start daemon $1 (command in the remaining arguments) in its own session, record its pid.
launch() {
  local name=$1; shift
  : >"$LOG/$name.out"
  # setsid execs in place (the background shell is not a group leader), and so does env: $! is
  # the daemon itself.
  setsid env AUTONUMA_SLURM_STATE="$STATE" SLURM_CONF="$CONF" "$@" \
    </dev/null >>"$LOG/$name.out" 2>&1 9>&- &
  echo $! >"$(pidfile "$name")"
}

log_tail() {
  local name=$1 f
  for f in "$LOG/$name.log" "$LOG/$name.out"; do
    if [ -s "$f" ]; then
      echo "----- last lines of $f -----" >&2
      tail -n "${2:-25}" "$f" >&2
    fi
  done
}

STARTED=()   # daemons started by this invocation (checked while waiting)

# Wait until "$@" succeeds; fail fast (with log tails) if a daemon we started died.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) d
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    for d in "${STARTED[@]}"; do
      # (not live_pid: right after launch the process may still be setsid/env, exec'ing)
      if ! pid_running "$(cat "$(pidfile "$d")" 2>/dev/null)"; then
        echo "slurm_cluster: ERROR: $d died while waiting for $what" >&2
        log_tail "$d"
        abort_start
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "slurm_cluster: ERROR: timed out after ${TIMEOUT}s waiting for $what" >&2
      if live_pid slurmctld >/dev/null; then
        { echo "----- sinfo / squeue -----"; timeout 5 sinfo -N -o '%N %T %E'; timeout 5 squeue; } >&2 2>&1 || true
      fi
      for d in "${STARTED[@]}"; do log_tail "$d" 15; done
      abort_start
    fi
    sleep 0.2
  done
}

abort_start() {
  echo "slurm_cluster: SLURM could not be started; stopping what was started" >&2
  stop_daemons >&2 || true
  exit 1
}

# --------------------------------------------------------------------------------------------
# install

installed() {
  local st
  st=$(dpkg-query -W -f='${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null) || return 1
  [ "$(grep -c '^ii' <<<"$st")" -eq ${#PACKAGES[@]} ]
}

cmd_install() {
  if installed; then say "packages already installed (${PACKAGES[*]})"; return 0; fi
  [ "$(id -u)" -eq 0 ] || die "installing ${PACKAGES[*]} needs root"
  command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu needed)"
  local t0=$SECONDS logf
  prepare_root
  logf="$ROOT/apt-install.log"
  # No init system here: keep the packages' maintainer scripts from starting system-wide
  # daemons (munge, mariadb, slurm*) that we would not own.
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$guard"; chmod 755 "$guard"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
             -o Dpkg::Options::=--force-confold)
  export DEBIAN_FRONTEND=noninteractive
  say "installing ${PACKAGES[*]} (log: $logf)"
  if ! "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" >"$logf" 2>&1; then
    say "install failed; running apt-get update and retrying"
    # An install killed half-way leaves dpkg "interrupted": finish configuring what it unpacked.
    if grep -q "dpkg was interrupted" "$logf"; then
      say "dpkg was interrupted by an earlier install; running dpkg --configure -a"
      dpkg --force-confdef --force-confold --configure -a >>"$logf" 2>&1 || true
    fi
    if ! { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}"; } >>"$logf" 2>&1; then
      tail -n 20 "$logf" >&2
      die "apt-get install ${PACKAGES[*]} failed (log: $logf)"
    fi
  fi
  if [ -n "$guard" ]; then rm -f "$guard"; trap - EXIT; fi
  installed || die "packages still missing after apt-get install (log: $logf)"
  say "installed in $((SECONDS - t0))s"
}

# --------------------------------------------------------------------------------------------
# start

# 24 random letters and digits (only [A-Za-z0-9], so it needs no quoting anywhere).
new_password() {
  local pw=""
  while [ ${#pw} -lt 24 ]; do
    pw+=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  done
  echo "${pw:0:24}"
}

# A value as an SQL string literal: backslashes and single quotes doubled/escaped, so whatever
# the value holds it stays one literal (MariaDB's default sql_mode treats \ as an escape).
sql_quote() {
  local v=${1//\\/\\\\}
  v=${v//\'/\'\'}
  printf "'%s'" "$v"
}

DB_PASSWORD=""
write_configs() {
  local cpus mem pw
  cpus="${SLURM_NODE_CPUS:-$(nproc)}"
  mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  # Fresh secrets on every start: a key or password found on disk is never trusted (munged
  # and the database user are (re)started with these values below). Old files are removed
  # first so a planted hard link or symlink is replaced, not written through.
  rm -f -- "$ETC/db.pw" "$ETC/munge.key"
  pw=$(new_password)
  (umask 077; printf '%s\n' "$pw" >"$ETC/db.pw")
  (umask 077; head -c 1024 /dev/urandom >"$ETC/munge.key")
  chmod 400 "$ETC/munge.key"
  DB_PASSWORD=$pw

  cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh start; rewritten on every start.
ClusterName=$CLUSTER
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups: they depend on the host and are not needed here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# start a job as soon as it is submitted (default: batched every 3 s), ~0.4 s for a trivial job
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
SlurmdParameters=config_overrides
JobRequeue=1
KillWait=5
MinJobAge=300
InactiveLimit=0
Waittime=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# the munge socket for connections to slurmdbd (AuthInfo only covers slurmctld/slurmd)
AccountingStoragePass=$MUNGE_SOCK
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  (umask 077; cat >"$ETC/slurmdbd.conf" <<EOF
# Written by scripts/slurm_cluster.sh start; rewritten on every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$pw
StorageLoc=slurm_acct_db
EOF
  )
  chmod 600 "$ETC/slurmdbd.conf"
}

MYSQL_OPTS=()
set_mysql_opts() {
  MYSQL_OPTS=(--no-defaults --datadir="$DB_DIR" --user=root --socket="$DB_SOCK"
              --innodb-buffer-pool-size=32M --innodb-log-file-size=16M)
}

munge_ok() { munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"; }
db_ok() { mariadb-admin --no-defaults --socket="$DB_SOCK" -u root ping; }
dbd_ok() { timeout 10 sacctmgr -n -P list cluster format=cluster; }
ctld_ok() { timeout 10 scontrol ping | grep -q 'is UP'; }
node_state() { timeout 10 sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1; }
node_idle() { [ "$(node_state)" = idle ]; }

sacctmgr_add() {   # sacctmgr_add <list args...> -- <add args...>: add unless listed already
  local list=() add=()
  while [ "$1" != -- ]; do list+=("$1"); shift; done; shift; add=("$@")
  if [ -z "$(timeout 10 sacctmgr -n -P list "${list[@]}")" ]; then
    timeout 10 sacctmgr -i add "${add[@]}" >/dev/null
  fi
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "starting the SLURM cluster needs root (SlurmUser=root)"
  local p
  for p in munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacctmgr; do
    command -v "$p" >/dev/null || die "$p not found: run '$0 install' first"
  done
  if cluster_up; then
    say "already up (cluster $CLUSTER, state $STATE)"
    print_env_lines
    return 0
  fi
  local t0=$SECONDS
  # Anything half-alive from an earlier run (stale state folder) is stopped first.
  if [ -d "$PIDS" ] && [ -n "$(ls -A "$PIDS" 2>/dev/null)" ]; then
    say "stale state in $STATE: stopping leftovers"
    stop_daemons
  fi
  # Fail early and clearly if another service (another cluster?) holds one of our ports.
  local port busy=""
  for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then busy+=" $port"; fi
  done
  [ -z "$busy" ] || die "port(s)$busy on 127.0.0.1 already in use (another SLURM cluster or MariaDB?); stop it or choose other ports with SLURM_PORT_BASE (now $PORT_BASE, uses $CTLD_PORT-$DB_PORT)"
  # $ROOT was checked by with_lock; everything below it is ours alone (mode 0711 or 0700), but
  # check each level anyway: a folder left by an older version of this script may be looser.
  make_private_dir "$STATE" 711
  local d
  for d in "$ETC" "$LOG" "$PIDS" "$STATE/spool" "$STATE/spool/slurmctld" "$STATE/spool/slurmd"; do
    make_private_dir "$d" 700
  done
  make_private_dir "$RUN" 755
  # munged insists that every component of its socket path is accessible (+x) to all.
  chmod 711 "$STATE"; chmod 755 "$RUN"
  rm -f "$RUN"/* "$PIDS"/*
  rm -f -- "$CONF" "$ETC/slurmdbd.conf"   # rewritten below; never written through a link
  write_configs

  # munge: as root, with its own key and socket (no clash with a system munged)
  launch munged munged --foreground --force --key-file="$ETC/munge.key" --socket="$MUNGE_SOCK" \
    --pid-file="$RUN/munged.pid" --seed-file="$RUN/munged.seed" --origin=127.0.0.1
  STARTED+=(munged)
  wait_for munged munge_ok

  # mariadb: own datadir, TCP on 127.0.0.1 only
  set_mysql_opts
  if [ ! -f "$DB_DIR/.autonuma-initialised" ]; then
    rm -rf "$DB_DIR"
    say "initialising the MariaDB datadir $DB_DIR"
    if ! mariadb-install-db "${MYSQL_OPTS[@]}" --auth-root-authentication-method=socket \
        --skip-test-db >"$LOG/mariadb-install-db.out" 2>&1; then
      log_tail mariadb-install-db
      echo "slurm_cluster: ERROR: mariadb-install-db failed" >&2
      abort_start
    fi
    touch "$DB_DIR/.autonuma-initialised"
  fi
  launch mariadbd mariadbd "${MYSQL_OPTS[@]}" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --skip-name-resolve --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadbd.log"
  STARTED+=(mariadbd)
  wait_for mariadbd db_ok
  if ! mariadb --no-defaults --socket="$DB_SOCK" -u root >"$LOG/mariadb-grant.out" 2>&1 <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY $(sql_quote "$DB_PASSWORD");
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
  then
    log_tail mariadb-grant; echo "slurm_cluster: ERROR: could not create the slurm database user" >&2
    abort_start
  fi

  launch slurmdbd slurmdbd -D
  STARTED+=(slurmdbd)
  wait_for slurmdbd dbd_ok
  if ! { sacctmgr_add cluster "$CLUSTER" -- cluster "$CLUSTER" &&
         sacctmgr_add account "$ACCOUNT" -- account "$ACCOUNT" cluster="$CLUSTER" \
           description="autonuma-jax tests" organization=autonuma &&
         sacctmgr_add assoc cluster="$CLUSTER" account="$ACCOUNT" user=root format=user -- \
           user root account="$ACCOUNT" cluster="$CLUSTER" defaultaccount="$ACCOUNT"; } >"$LOG/sacctmgr.out" 2>&1; then
    log_tail sacctmgr; log_tail slurmdbd
    echo "slurm_cluster: ERROR: sacctmgr could not register cluster/account" >&2
    abort_start
  fi

  launch slurmctld slurmctld -D -i -f "$CONF"
  STARTED+=(slurmctld)
  wait_for slurmctld ctld_ok
  launch slurmd slurmd -D -N localhost -f "$CONF"
  STARTED+=(slurmd)
  wait_for "slurmd to register" node_registered
  # Jobs saved in the state folder by a run that crashed would restart now: start empty.
  local jobs
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs left from an earlier run: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs >/dev/null 2>&1 || true
    wait_for "the leftover jobs to end" queue_empty
  fi
  case "$(node_state)" in
    *drain* | *down* | *fail*)   # left so by an earlier run
      timeout 10 scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  wait_for "node localhost to be idle" node_idle
  say "up in $((SECONDS - t0))s: cluster $CLUSTER, node localhost ($(sinfo -h -N -o '%c CPUs, %m MB')), state $STATE"
  print_env_lines
}

queue_empty() { local q; q=$(timeout 10 squeue -h -o %A) && [ -z "$q" ]; }
node_registered() { local s; s=$(node_state); [ -n "$s" ] && [[ $s != unknown* ]]; }

# --------------------------------------------------------------------------------------------
# stop

# Processes started for this state folder that are still alive: everything whose environment
# carries our marker (the daemons, slurmscriptd, the slurmstepd of running jobs, which slurmd
# starts in sessions of their own) and all their descendants (the jobs' tasks). Zombies are left
# to init.
# "pid ppid state" of every process, from /proc (no procps needed).
proc_table() {
  local f line st ppid
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    # fields after the command name (which may hold spaces): state, ppid, ...
    read -r st ppid _ <<<"${line##*) }"
    echo "${line%% *} $ppid $st"
  done
}

leftovers() {
  local marked
  marked=$(grep -lzxF "AUTONUMA_SLURM_STATE=$STATE" /proc/[0-9]*/environ 2>/dev/null |
           sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p' | tr '\n' ' ') || true
  [ -n "${marked// /}" ] || return 0
  proc_table | awk -v marked="$marked" -v self=$$ '
    BEGIN { n = split(marked, m, " "); for (i = 1; i <= n; i++) mark[m[i]] = 1 }
    { pid[NR] = $1; ppid[NR] = $2; st[NR] = $3 }
    END { do { changed = 0
               for (i = 1; i <= NR; i++) if (!(pid[i] in mark) && (ppid[i] in mark)) { mark[pid[i]] = 1; changed = 1 } }
          while (changed)
          for (i = 1; i <= NR; i++) if ((pid[i] in mark) && st[i] !~ /^Z/ && pid[i] != self) print pid[i] }'
}

stop_daemons() {
  local d pid i deadline
  # Cancel the cluster's jobs first so that their processes end while slurmd still runs.
  if live_pid slurmctld >/dev/null && live_pid slurmd >/dev/null; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
    if [ -n "${jobs// /}" ]; then
      say "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs >/dev/null 2>&1 || true
      deadline=$((SECONDS + 15))
      while [ $SECONDS -lt $deadline ] && [ -n "$(timeout 5 squeue -h -o %A 2>/dev/null)" ]; do sleep 0.3; done
    fi
  fi
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    d=${DAEMONS[i]}
    if pid=$(live_pid "$d"); then
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
        if [ $SECONDS -ge $deadline ]; then say "$d ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
        sleep 0.1
      done
      say "stopped $d ($pid)"
    fi
    rm -f "$(pidfile "$d")"
  done
  # Leftovers: slurmstepd of jobs that did not end, their tasks, a daemon's children.
  local left tries=0
  while left=$(leftovers | tr '\n' ' ') && [ -n "${left// /}" ]; do
    if [ $tries -ge 50 ]; then say "WARNING: could not kill: $left"; break; fi
    [ $tries -eq 0 ] && say "killing leftover processes of this cluster: $left"
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    tries=$((tries + 1)); sleep 0.1
  done
  return 0
}

cmd_stop() {
  if { [ ! -d "$PIDS" ] || [ -z "$(ls -A "$PIDS" 2>/dev/null)" ]; } && [ -z "$(leftovers)" ]; then
    say "not running (no recorded pids in $PIDS)"
    return 0
  fi
  stop_daemons
  say "stopped (state kept in $STATE)"
}

# --------------------------------------------------------------------------------------------
# status

cluster_up() {
  local d
  for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null || return 1; done
  [ -f "$CONF" ] && node_idle_or_busy
}

node_idle_or_busy() {
  case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

print_env_lines() {
  echo "CLUSTER_NAME=$CLUSTER"
  echo "STATE_DIR=$STATE"
  echo "SLURM_CONF=$CONF"
  echo "PARTITION=debug"
  echo "ACCOUNT=$ACCOUNT"
  echo "NODE=localhost"
  echo "NODE_CPUS=$(awk -F'[ =]' '/^NodeName=/ {for (i = 1; i < NF; i++) if ($i == "CPUs") print $(i + 1)}' "$CONF")"
  echo "LOG_DIR=$LOG"
}

cmd_status() {
  local d pid n_up=0 n=0
  echo "cluster $CLUSTER, state folder $STATE"
  for d in "${DAEMONS[@]}"; do
    n=$((n + 1))
    if pid=$(live_pid "$d"); then
      n_up=$((n_up + 1)); printf '  %-10s running (pid %s)\n' "$d" "$pid"
    elif [ -f "$(pidfile "$d")" ]; then
      printf '  %-10s dead (stale pid %s)\n' "$d" "$(cat "$(pidfile "$d")")"
    else
      printf '  %-10s not running\n' "$d"
    fi
  done
  local node=""
  if [ $n_up -gt 0 ] && [ -f "$CONF" ] && live_pid slurmctld >/dev/null; then
    node=$(node_state || true)
    echo "  node localhost: ${node:-unknown}"
    timeout 10 squeue -h -o '  job %i %T %j' 2>/dev/null | head -n 20 || true
  fi
  if [ $n_up -eq $n ] && [[ $node =~ ^(idle|mixed|allocated|completing) ]]; then
    echo "state=up"
    print_env_lines
    return 0
  elif [ $n_up -eq 0 ]; then
    echo "state=down"
    return 3
  else
    echo "state=degraded"
    return 1
  fi
}

# --------------------------------------------------------------------------------------------

with_lock() {
  prepare_root
  # The lock file lives in our private root (checked above), so it cannot be a planted link;
  # refuse one anyway rather than truncate whatever it points at.
  [ ! -L "$ROOT/.$CLUSTER.lock" ] || die "$ROOT/.$CLUSTER.lock is a symlink; refusing it"
  exec 9>>"$ROOT/.$CLUSTER.lock"
  flock -w 300 9 || die "could not lock $ROOT/.$CLUSTER.lock"
  "$@"
}

# Run as a command; sourced (tests), only the functions above are defined.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "${1:-}" in
  install) cmd_install ;;
  start)
    [ "$(id -u)" -eq 0 ] || die "starting the SLURM cluster needs root (SlurmUser=root, slurmd launches jobs as their users)"
    with_lock cmd_start ;;
  stop) with_lock cmd_stop ;;
  status) cmd_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 {install|start|stop|status|env}" >&2; exit 2 ;;
esac
