// One step of the capacity search: a constant arrival rate against ONE service.
//
// helpers/load/steps.py runs this script once per (service, rate, repeat) and decides from the
// summary whether the step held the objective (p95 <= 25 ms, errors < 0.1 %, dropped < 1 %).
// Env: TARGETS (one service), FEATURE_RANGES, RATE (requests/s), DURATION_S, MAX_VUS,
// TIMEOUT_S, RUN_ID. Bounded by duration, maxVUs, per-request timeout and gracefulStop.
import { parseRanges, parseTargets, predict } from './common.js';

const TARGETS = parseTargets();
const RANGES = parseRanges();
const SERVICES = Object.keys(TARGETS);
if (SERVICES.length !== 1) {
  throw new Error(`capacity.js loads one service at a time; TARGETS names ${SERVICES.length}`);
}
const SERVICE = SERVICES[0];

function positiveNumber(name, fallback) {
  const value = Number(__ENV[name] || fallback);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${name} must be a positive number, got ${__ENV[name]}`);
  }
  return value;
}

const RATE = positiveNumber('RATE', 0);
const DURATION_S = positiveNumber('DURATION_S', 10);
const MAX_VUS = Math.round(positiveNumber('MAX_VUS', 200));
const TIMEOUT_S = positiveNumber('TIMEOUT_S', 2);
// PRE_ALLOCATED_VUS (optional) fixes the VUs from the start, e.g. to match another generator's
// connections; by default they grow with the rate.
const PRE_VUS = Math.round(positiveNumber('PRE_ALLOCATED_VUS', Math.max(5, Math.ceil(RATE / 50))));

export const options = {
  scenarios: {
    step: {
      executor: 'constant-arrival-rate',
      rate: Math.round(RATE),
      timeUnit: '1s',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: Math.min(MAX_VUS, PRE_VUS),
      maxVUs: MAX_VUS,
      gracefulStop: `${TIMEOUT_S}s`,
      tags: { service: SERVICE },
    },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)'],
  tags: { run_id: __ENV.RUN_ID || 'capacity', mode: 'capacity' },
  systemTags: ['status', 'method', 'name', 'scenario', 'expected_response'],
  discardResponseBodies: true,
};

export default function () {
  predict(SERVICE, TARGETS[SERVICE], RANGES, `${TIMEOUT_S}s`);
}
