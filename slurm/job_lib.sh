# Shared by the sbatch templates in this folder (sourced, not run). See slurm/README.md.
#
# autonuma_job_setup   defaults for AUTONUMA_REPO / AUTONUMA_CMD / AUTONUMA_JOB_DIR, a header in
#                      the job's log.
# autonuma_run CMD...  run CMD in the background and wait for it. On SIGUSR1 (sent to this batch
#                      shell by `--signal=B:USR1@120` before the time limit, or by
#                      `scancel --signal=USR1 --batch`), forward AUTONUMA_FORWARD_SIGNAL (USR1) to
#                      CMD so that it can save a checkpoint, give it AUTONUMA_CHECKPOINT_GRACE
#                      seconds (60) to exit, then `scontrol requeue` this job unless CMD exited 0
#                      (finished). The requeued job runs again with SLURM_RESTART_COUNT=1, 2, ...
#                      and the same AUTONUMA_RUN_DIR, so CMD can resume from its checkpoint.
#                      At most AUTONUMA_MAX_RESTARTS (20) requeues.

autonuma_job_setup() {
  : "${SLURM_JOB_ID:?not inside a SLURM job}"
  export AUTONUMA_REPO="${AUTONUMA_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}"
  export AUTONUMA_CMD="${AUTONUMA_CMD:-python -m autonuma_jax}"
  # One folder per job (per array: one for the whole array), made by slurm/submit.sh.
  export AUTONUMA_JOB_DIR="${AUTONUMA_JOB_DIR:-$AUTONUMA_REPO/outputs/slurm/${SLURM_JOB_NAME:-job}-${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}}"
  mkdir -p "$AUTONUMA_JOB_DIR"
  echo "[autonuma] $(date -Is) job ${SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+ (array ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})}" \
       "on ${SLURMD_NODENAME:-$(hostname)}, restart ${SLURM_RESTART_COUNT:-0}," \
       "nodes ${SLURM_JOB_NODELIST:-?}, gpus ${CUDA_VISIBLE_DEVICES:-none}, job dir $AUTONUMA_JOB_DIR"
}

_autonuma_alive() {   # a process that exists and is not a zombie
  [ -r "/proc/$1/stat" ] && [ "$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

_autonuma_on_usr1() {
  local sig="${AUTONUMA_FORWARD_SIGNAL-USR1}" grace="${AUTONUMA_CHECKPOINT_GRACE:-60}" t=0 rc
  echo "[autonuma] $(date -Is) got USR1 (time limit or preemption ahead), restart ${SLURM_RESTART_COUNT:-0}"
  if [ -n "$sig" ] && [ -n "${_autonuma_child:-}" ] && _autonuma_alive "$_autonuma_child"; then
    echo "[autonuma] sending SIG$sig to the run (pid $_autonuma_child), ${grace}s to checkpoint"
    kill -s "$sig" "$_autonuma_child" 2>/dev/null || true
    while _autonuma_alive "$_autonuma_child" && [ $t -lt $((grace * 10)) ]; do sleep 0.1; t=$((t + 1)); done
  fi
  if [ -z "${_autonuma_child:-}" ] || ! _autonuma_alive "$_autonuma_child"; then
    rc=1; [ -z "${_autonuma_child:-}" ] || { rc=0; wait "$_autonuma_child" 2>/dev/null || rc=$?; }
    if [ "$rc" -eq 0 ]; then
      echo "[autonuma] the run finished (exit 0): not requeueing"
      exit 0
    fi
    echo "[autonuma] the run exited with $rc"
  fi
  if [ "${SLURM_RESTART_COUNT:-0}" -ge "${AUTONUMA_MAX_RESTARTS:-20}" ]; then
    echo "[autonuma] already restarted ${SLURM_RESTART_COUNT} times: not requeueing"
    exit 1
  fi
  echo "[autonuma] $(date -Is) requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
}

autonuma_run() {
  local rc
  _autonuma_child=""
  trap _autonuma_on_usr1 USR1
  "$@" &
  _autonuma_child=$!
  while true; do
    rc=0; wait "$_autonuma_child" || rc=$?
    # wait returns >128 when a trapped signal interrupted it while the run goes on
    if [ "$rc" -gt 128 ] && _autonuma_alive "$_autonuma_child"; then continue; fi
    break
  done
  trap - USR1
  echo "[autonuma] $(date -Is) the run exited with $rc"
  return "$rc"
}

# The command line of AUTONUMA_CMD as an array (split on whitespace, like the shell would).
autonuma_cmd_array() {
  read -r -a AUTONUMA_CMD_ARRAY <<<"$AUTONUMA_CMD"
  [ ${#AUTONUMA_CMD_ARRAY[@]} -gt 0 ] || { echo "[autonuma] AUTONUMA_CMD is empty" >&2; exit 2; }
}
