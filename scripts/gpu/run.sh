#!/usr/bin/env bash
# The device run (issue 18): the lab's CUDA paths, the wide mini teachers, the 480x832x81 bench.
#
# Prepare here first (scripts/gpu/prepare.sh), then the device tool's calls, back to back so each finds the
# machine warm (carry [".whl", ".gpu", "data/samples"]; leave kind out so an H100 is preferred):
#   bash scripts/gpu/run.sh --phases env,perf        # ~7 min by estimate (issue 29), first in every lent session
#     kernel profiles (profile-{student,ltx,teacher}.json) and the benches of diffusers eager vs @fused (and
#     @fused+subpixel, +graphs, +chunk4). PERF_FAMILIES=1 adds Wan 2.2's and LTX-2's eager vs @fused
#     (perf-bench-families.json, ~1 min more; the dry run always). Then, here:
#     python scripts/gpu/perf_report.py FILES_AT --write docs/results/perf-CARD-DATE.md --raw ...
#     drafts the results page (targets met or not, benches, kernel profiles) from the returned files.
#   TEACHER_MINUTES=N TAEF2_MINUTES=M bash scripts/gpu/run.sh --phases teachers,taef2   # the minutes left (issue 32)
#     teachers: mini-wan, mini-ltx and the ablations mini-ltx-ema and mini-ltx-short (figures only), warm-started
#     from the shipped weights, N minutes side by side (+~2 min), each card with its learning curve; taef2: TAEF2's
#     students at 50/25/12.5% width distilled M minutes each (+~3 min), retention and GPU speed
#     (real-decoder-taef2.md/.json: copy them to docs/results). Either phase alone fits a short remainder.
# Older phases: env smoke probe (every CUDA path, the teachers' s/step), bench, compile (only when named).
#   bash scripts/gpu/run.sh --dry-run            # env,smoke,probe,teachers,bench on the CPU at tiny shapes
#   bash scripts/gpu/run.sh --dry-run --phases env,perf   # the perf phase on the CPU (its own call: 8 files at most)
#   bash scripts/gpu/run.sh --dry-run --phases env,taef2  # the taef2 phase on the CPU (random weights)
#
# Runs from the checkout with PYTHONPATH (never pip install -e): the carried wheels go to /tmp/site.
# Each phase has its own timeout and writes its files to $OUT as it finishes, so a timeout loses only
# the phase it cut. Size each call to 9 minutes (the tool's limit is 10), leaving time for one rerun.
set -uo pipefail
cd "$(dirname "$0")/../.."
DRY=0
PHASES=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --phases) PHASES="$2"; shift ;;
    *) echo "run.sh: unknown argument $1 (use --dry-run, --phases a,b)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$PHASES" ]; then
  [ $DRY = 1 ] || { echo "run.sh: name the phases (--phases env,smoke,probe or teachers,bench; see the header)" >&2; exit 2; }
  PHASES="env,smoke,probe,teachers,bench"
fi
OUT=${OUT:-runs/gpu/out}
WORK=${WORK:-runs/gpu}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}

if ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import diffusers" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "run.sh: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -f .gpu/assets/videos/wan2_1_generated_832x480_81f.mp4 ] || [ -d .gpu/assets/weights/taef2 ]; then
  export LAB_SHARED_ASSETS="$PWD/.gpu/assets"  # prepare.sh's copies of ../shared: the Wan clip, TAEF2's weights
fi

has() { case ",$PHASES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
# phase NAME SECONDS CMD...: run with a timeout; its log is appended to $OUT/run.log (one file: a device
# run returns at most 8), with one status line per phase.
mkdir -p "$WORK/logs"
phase() {
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout -k 15 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1
  local rc=$?
  { echo "=== phase $name: rc=$rc ($((SECONDS - t0)) s)"; tail -n 60 "$WORK/logs/$name.log"; } >> "$OUT/run.log"
  echo "phase $name: rc=$rc ($((SECONDS - t0)) s)"
  tail -n 12 "$WORK/logs/$name.log"
  return $rc
}

if [ $DRY = 1 ]; then
  DEV=cpu; DT=fp32; WAN=wan2.1-tiny; LTX=ltx-video-tiny; FRAMES=9; SIZE=64x64; REP=1
  TMIN=0.2; SMOKE=(--dry-run --parallel 2)
else
  DEV=cuda; DT=bf16; WAN=wan2.1; LTX=ltx-video; FRAMES=81; SIZE=480x832; REP=${BENCH_REPEATS:-3}
  TMIN=${TEACHER_MINUTES:-4}; SMOKE=(--device cuda --timeout 110)
fi

if has env; then
  phase env 60 "$PY" -c "
import torch, platform, sys
print('python', sys.version.split()[0], platform.machine())
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
if torch.cuda.is_available(): print('gpu', torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory // 2**20, 'MiB')
import diffusers, cv2; print('diffusers', diffusers.__version__, 'cv2', cv2.__version__)
from lab.data.video import backend; print('video backend', backend())
"
fi

has smoke && phase smoke 150 "$PY" scripts/gpu/smoke.py "${SMOKE[@]}" --out "$OUT" --workdir "$WORK/smoke"

if has probe; then  # the teachers' real recipe for a few steps: seconds per step and peak memory
  phase probe 120 "$PY" scripts/gpu/probe.py $([ $DRY = 1 ] && echo --dry-run) --out "$OUT"
fi

if has teachers; then
  phase teachers $(awk "BEGIN {print int($TMIN * 60 + 110)}") "$PY" scripts/gpu/teachers.py \
    $([ $DRY = 1 ] && echo --dry-run) --minutes "$TMIN" --out "$OUT" --work "$WORK/teachers" \
    --wan-batch "${WAN_BATCH:-8}" --ltx-batch "${LTX_BATCH:-16}" ${TEACHERS_ONLY:+--only "$TEACHERS_ONLY"}
fi

if has perf; then
  # Issue 29: kernel profiles of the runtime as it is (eager, then @fused), then the benches against diffusers
  # eager in the same process, then compile rows. Ordered by value: a timeout cuts the least useful. 7 files.
  if [ $DRY = 1 ]; then
    PW="$WAN,$WAN@fused"; PS="wan2.1-flash,wan2.1-flash@fused,wan2.1-flash@fused+subpixel"; PL="$LTX,$LTX@fused"; PR=1
  else
    PW="$WAN,$WAN@fused,$WAN@fused+graphs,$WAN@fused+subpixel"
    PS="wan2.1-flash,wan2.1-flash@fused,wan2.1-flash@fused+graphs,wan2.1-flash@fused+chunk4"
    PS="$PS,wan2.1-flash@fused+subpixel,wan2.1-flash@fused+subpixel+graphs"
    PL="$LTX,$LTX@fused,ltx-video-flash,ltx-video-flash@fused"; PR=${BENCH_REPEATS:-3}
  fi
  popt=(--weights random --device "$DEV" --dtype "$DT" --frames $FRAMES --size $SIZE --repeats $PR)
  phase perf-student 180 "$PY" scripts/gpu/perf.py --decoders "$PS" "${popt[@]}" --out "$WORK/perf-student"
  cp "$WORK/perf-student/profile.json" "$OUT/profile-student.json" 2>/dev/null
  phase perf-ltx 120 "$PY" scripts/gpu/perf.py --decoders "$PL" "${popt[@]}" --out "$WORK/perf-ltx"
  cp "$WORK/perf-ltx/profile.json" "$OUT/profile-ltx.json" 2>/dev/null
  phase perf-teacher 180 "$PY" scripts/gpu/perf.py --decoders "$PW" "${popt[@]}" --out "$WORK/perf-teacher"
  cp "$WORK/perf-teacher/profile.json" "$OUT/profile-teacher.json" 2>/dev/null
  bopt=(--weights random --device "$DEV" --dtype "$DT" --frames $FRAMES --size $SIZE --repeats $PR --no-macs --json)
  [ $DRY = 1 ] && bopt+=(--no-memory)
  phase perf-bench 200 sh -c "$PY -m lab bench --decoders $PW,$PS ${bopt[*]} > $OUT/perf-bench.json"
  phase perf-bench-ltx 90 sh -c "$PY -m lab bench --decoders $PL ${bopt[*]} > $OUT/perf-bench-ltx.json"
  if [ $DRY = 1 ] || [ -n "${PERF_FAMILIES:-}" ]; then
    W22=$([ $DRY = 1 ] && echo wan2.2-tiny || echo wan2.2); L2=$([ $DRY = 1 ] && echo ltx-2-tiny || echo ltx-2)
    L2S=$([ $DRY = 1 ] && echo "" || echo ",ltx-2-flash,ltx-2-flash@fused")
    phase perf-bench-families 150 sh -c "$PY -m lab bench --decoders $W22,$W22@fused,$W22@fused+subpixel,$L2,$L2@fused$L2S ${bopt[*]} > $OUT/perf-bench-families.json"
  fi
  if [ $DRY = 0 ] && [ -z "${PERF_NO_COMPILE:-}" ]; then
    phase perf-compile 150 sh -c "$PY -m lab bench --decoders wan2.1-flash@fused,wan2.1-flash@fused+compile ${bopt[*]} > $OUT/perf-compile.json"
  fi
fi

if has taef2; then
  # Issue 32: the method on a real decoder (TAEF2), distilled on the GPU: per width, TAEF2_MINUTES of training
  # (default 1) at 256 px, then retention on the held-out clips and the GPU speed at 1024x1024. Scoring runs on
  # the CPU; the table before training is the committed run's (--reuse-selection: deterministic, and it would
  # cost a minute). 2 files: real-decoder-taef2.md and .json.
  if [ $DRY = 1 ]; then
    topt=(--weights random --frames 2 --calib-frames 2 --seeds 1 --steps 3 --keeps 0.25 --crop 32 --train-frames 2
          --bench-size 64x64 --bench-frames 2 --threads 1); TLIM=300
  else
    TM=${TAEF2_MINUTES:-1}; TK=${TAEF2_KEEPS:-0.5,0.25,0.125}
    topt=(--weights .gpu/assets/weights/taef2 --device cuda --minutes "$TM" --steps 100000 --keeps "$TK"
          --batch "${TAEF2_BATCH:-16}" --crop 256 --train-frames 4 --dtype bf16 --bench-size 1024x1024 --bench-frames 8
          --bench-dtype fp16 --threads 8 --reuse-selection)
    NK=$(( $(printf %s "$TK" | tr -cd , | wc -c) + 1 ))  # students: one budget of TM minutes each
    TLIM=$(awk "BEGIN {print int($TM * 60 * $NK + 200)}")
  fi
  phase taef2 "$TLIM" "$PY" scripts/real_decoder_taef2.py "${topt[@]}" --previous docs/results/real-decoder-taef2.json \
    --out "$OUT/real-decoder-taef2.md"
fi

if has bench; then
  # Flash-VAED students of the full-size architectures (random weights: speed only). Channel choice does
  # not change speed; independence is tried first (it exercises the CUDA analysis), magnitude if it fails.
  for fam in wan ltx; do
    t=$([ $fam = wan ] && echo $WAN || echo $LTX)
    for crit in independence magnitude; do
      rm -rf "$WORK/flash-$fam"
      phase "prune-$fam-$crit" 120 "$PY" -m lab prune --teacher "$t" --weights random --plan flash-vaed \
        --criterion "$crit" --frames 9 --size 64x64 --device "$DEV" --out "$WORK/flash-$fam" --json && \
        [ -f "$WORK/flash-$fam/lab_decoder.json" ] && break
    done
  done
  common=(--weights random --device "$DEV" --dtype "$DT" --frames $FRAMES --size $SIZE --repeats $REP --json)
  if [ $DRY = 0 ]; then common+=(--reference fp32); else common+=(--no-memory); fi
  phase bench-wan 240 sh -c "$PY -m lab bench --decoders $WAN,$WAN@fast,$WORK/flash-wan,$WORK/flash-wan@fast ${common[*]} > $OUT/bench-wan.json"
  phase bench-ltx 120 sh -c "$PY -m lab bench --decoders $LTX,$LTX@fast,$WORK/flash-ltx ${common[*]} > $OUT/bench-ltx.json"
fi

if has compile; then
  # One compile mode per decoder, each against its eager self in the same process.
  common=(--weights random --device "$DEV" --dtype "$DT" --frames $FRAMES --size $SIZE --repeats $REP --json)
  [ $DRY = 1 ] && common+=(--no-memory)
  phase compile-wan 200 sh -c "$PY -m lab bench --decoders $WORK/flash-wan,$WORK/flash-wan@compile ${common[*]} > $OUT/compile-wan.json"
  phase compile-ltx 120 sh -c "$PY -m lab bench --decoders $LTX,$LTX@compile,$WORK/flash-ltx,$WORK/flash-ltx@compile ${common[*]} > $OUT/compile-ltx.json"
fi
echo "run.sh: done"; grep '^=== phase' "$OUT/run.log"
