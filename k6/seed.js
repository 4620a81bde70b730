// The seed's load test, reproduced and made bounded.
//
// Shape (profile "seed" of profiles.json): ramping-arrival-rate, timeUnit 1m, 2 min at 100
// iterations/min, then linear to 4000, 8000 and 16000 over 2 min each.
//
// The post's config and its prose differ on the first two minutes. Its config
// (docs/original-post.md) is startRate 100, stages 2m -> 4000, 2m -> 8000, 2m -> 16000 and
// startTime '2m': the scenario sends nothing for two minutes, then ramps from 100/min. Its prose
// calls those two minutes "100 requests per minute". We follow the prose: the first stage holds
// 100/min for 2 min (a warm, steady baseline before the ramp), then the post's three ramps.
//
// Modes (env MODE):
//   coupled  - the original loop: one iteration posts to every service in turn, then sleeps 1 s.
//              The services share the host's CPU and see the same offered rate at the same time.
//              (The sleep does not pace an arrival-rate executor; it only holds a VU, as before.)
//   isolated - one scenario per service, run one after another (startTime offsets plus a gap),
//              so no two services are ever under load at the same time. No sleep: the executor
//              paces the requests.
// Profile (env PROFILE_JSON, named by env PROFILE): one entry of profiles.json, as the run froze
// it into its folder (helpers/load/profiles.py) — seed | quick (1/8 of the time) | smoke.
// Bounded: maxVUs, per-request timeout and gracefulStop make every run end by itself.
import { sleep } from 'k6';
import { parseRanges, parseTargets, predict, requiredJsonEnv } from './common.js';

const PROFILE = requiredJsonEnv('PROFILE_JSON');
const PROFILE_NAME = __ENV.PROFILE || 'unnamed';
const MODE = __ENV.MODE || 'coupled';
const MODES = ['coupled', 'isolated'];

if (!MODES.includes(MODE)) {
  throw new Error(`MODE=${MODE} is unknown; expected one of ${MODES.join(', ')}`);
}
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
