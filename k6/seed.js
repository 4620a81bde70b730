// The seed's load test, reproduced and made bounded.
//
// Shape (profiles.json): ramping-arrival-rate, timeUnit 1m, 2 min at 100 iterations/min, then
// linear to 4000, 8000 and 16000 over 2 min each.
//
// Prose vs config: the post's prose says the test "starts with 2 minutes at 100 requests per
// minute", but its config's first stage is `{ duration: '2m', target: 100 }` with no startRate —
// and k6's startRate defaults to 0, so that config actually ramps 0 -> 100 over the first two
// minutes (about 100 iterations instead of 200). We follow the prose: startRate = 100 and the
// first stage holds at 100, which is what the author described and meant to measure (a warm,
// steady baseline before the ramp). The profile records start_rate so the choice is explicit.
//
// Modes (env MODE):
//   coupled  - the original loop: one iteration posts to every service in turn, then sleeps 1 s.
//              The services share the host's CPU and see the same offered rate at the same time.
//              (The sleep does not pace an arrival-rate executor; it only holds a VU, as before.)
//   isolated - one scenario per service, run one after another (startTime offsets plus a gap),
//              so no two services are ever under load at the same time. No sleep: the executor
//              paces the requests.
// Profiles (env PROFILE): seed | quick (1/8 of the time) | smoke (~20 s per phase, gentle).
// Bounded: maxVUs, per-request timeout and gracefulStop make every run end by itself.
import { sleep } from 'k6';
import { parseRanges, parseTargets, predict } from './common.js';

const PROFILES = JSON.parse(open('./profiles.json'));
const PROFILE_NAME = __ENV.PROFILE || 'seed';
const MODE = __ENV.MODE || 'coupled';
const MODES = ['coupled', 'isolated'];

if (!(PROFILE_NAME in PROFILES) || PROFILE_NAME.startsWith('_')) {
  const known = Object.keys(PROFILES).filter((k) => !k.startsWith('_'));
  throw new Error(`PROFILE=${PROFILE_NAME} is unknown; expected one of ${known.join(', ')}`);
}
if (!MODES.includes(MODE)) {
  throw new Error(`MODE=${MODE} is unknown; expected one of ${MODES.join(', ')}`);
}

const PROFILE = PROFILES[PROFILE_NAME];
const TARGETS = parseTargets();
const RANGES = parseRanges();
const SERVICES = Object.keys(TARGETS);
const TIMEOUT = `${PROFILE.request_timeout_s}s`;
const PHASE_S = PROFILE.stages.reduce((total, stage) => total + stage.duration_s, 0);

function rampingScenario(exec, startTimeS, extraTags) {
  return {
    executor: 'ramping-arrival-rate',
    exec: exec,
    timeUnit: PROFILE.time_unit,
    startRate: PROFILE.start_rate,
    stages: PROFILE.stages.map((s) => ({ duration: `${s.duration_s}s`, target: s.target })),
    preAllocatedVUs: PROFILE.pre_allocated_vus[MODE],
    maxVUs: PROFILE.max_vus[MODE],
    startTime: `${startTimeS}s`,
    gracefulStop: `${PROFILE.request_timeout_s}s`,
    tags: extraTags,
  };
}

function buildScenarios() {
  if (MODE === 'coupled') {
    return { all: rampingScenario('coupled', 0, { service: 'all' }) };
  }
  const scenarios = {};
  SERVICES.forEach((service, index) => {
    const start = index * (PHASE_S + PROFILE.gap_s);
    // The scenario is named after the service: k6 tags dropped_iterations with the scenario
    // name only (not with scenario tags), so this is how drops are split per service.
    scenarios[service] = Object.assign(
      rampingScenario('isolated', start, { service: service }),
      { env: { SERVICE: service } },
    );
  });
  return scenarios;
}

// A trivially true threshold per service makes k6 keep per-service sub-metrics in the summary.
function perServiceThresholds() {
  const thresholds = {};
  for (const service of SERVICES) {
    thresholds[`http_req_duration{service:${service}}`] = ['max>=0'];
    thresholds[`http_reqs{service:${service}}`] = ['count>=0'];
    thresholds[`http_req_failed{service:${service}}`] = ['rate>=0'];
    if (MODE === 'isolated') {
      thresholds[`dropped_iterations{scenario:${service}}`] = ['count>=0'];
    }
  }
  return thresholds;
}

export const options = {
  scenarios: buildScenarios(),
  thresholds: perServiceThresholds(),
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)'],
  tags: { run_id: __ENV.RUN_ID || 'unnamed', mode: MODE, profile: PROFILE_NAME },
  // Keep only the tags the analysis uses: bounded label cardinality in Prometheus.
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response', 'check'],
  discardResponseBodies: true,
};

export function coupled() {
  for (const service of SERVICES) {
    predict(service, TARGETS[service], RANGES, TIMEOUT);
  }
  sleep(1);
}

export function isolated() {
  const service = __ENV.SERVICE;
  predict(service, TARGETS[service], RANGES, TIMEOUT);
}
