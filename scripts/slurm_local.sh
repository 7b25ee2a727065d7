#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for tests/test_slurm.py.
#
#   scripts/slurm_local.sh start   # prints `export SLURM_CONF=...`; idempotent
#   scripts/slurm_local.sh stop    # stops only the daemons this script started
#
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root (SlurmUser=root).
# Everything lives under $LTH_SLURM_DIR (default /tmp/lth-slurm): slurm.conf, state, logs and
# the pids of the daemons started here. Nothing under /etc is changed except the munge key,
# created if there is none. Accounting is off (no slurmdbd).
set -euo pipefail

DIR=${LTH_SLURM_DIR:-/tmp/lth-slurm}
CONF=$DIR/slurm.conf
STARTED=$DIR/started.pids

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool"
  cat > "$CONF" <<EOF
ClusterName=lth
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
MinJobAge=60
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  command -v slurmctld >/dev/null || { echo "slurm_local: slurmctld not found (apt-get install slurm-wlm munge)" >&2; exit 3; }
  command -v munged >/dev/null || { echo "slurm_local: munged not found (apt-get install munge)" >&2; exit 3; }
  [[ $(id -u) == 0 ]] || { echo "slurm_local: needs root (SlurmUser=root)" >&2; exit 3; }
  mkdir -p "$DIR"
  touch "$STARTED"
  if ! pgrep -x munged >/dev/null; then
    [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    munged --force --pid-file "$DIR/munged.pid"
    echo "munged $DIR/munged.pid" >> "$STARTED"
  fi
  [[ -f $CONF ]] || write_conf
  if ! alive "$DIR/slurmctld.pid"; then
    slurmctld -f "$CONF" -i
    echo "slurmctld $DIR/slurmctld.pid" >> "$STARTED"
  fi
  if ! alive "$DIR/slurmd.pid"; then
    slurmd -f "$CONF"
    echo "slurmd $DIR/slurmd.pid" >> "$STARTED"
  fi
  for _ in $(seq 30); do  # the node registers within a few seconds
    if SLURM_CONF=$CONF sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  echo "slurm_local: the node did not come up (see $DIR/slurmctld.log, $DIR/slurmd.log)" >&2
  exit 4
}

stop() {
  [[ -f $STARTED ]] || return 0
  # Last started, first stopped; only the pids this script recorded.
  tac "$STARTED" | while read -r name pidfile; do
    if alive "$pidfile"; then
      kill "$(cat "$pidfile")" || true
    fi
  done
  rm -f "$STARTED"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
