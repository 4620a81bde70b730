// Shared by seed.js and capacity.js: environment parsing, the random payload, one checked POST.
// Everything a run needs arrives through environment variables (set by helpers/load/k6.py), so
// the same script runs against the local or the docker backend.
import http from 'k6/http';
import { check, fail } from 'k6';

export function requiredJsonEnv(name) {
  const raw = __ENV[name];
  if (!raw) {
    throw new Error(`environment variable ${name} is required (JSON)`);
  }
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new Error(`environment variable ${name} is not valid JSON: ${error}`);
  }
}

// TARGETS = {"python-api-pkl": "http://127.0.0.1:5001", ...}: service name -> base URL.
export function parseTargets() {
  const targets = requiredJsonEnv('TARGETS');
  const names = Object.keys(targets);
  if (names.length === 0) {
    throw new Error('TARGETS must name at least one service');
  }
  return targets;
}

// FEATURE_RANGES = manifest["feature_ranges"]: {"sepal_length": {"min": 4.3, "max": 7.9}, ...}.
export function parseRanges() {
  const ranges = requiredJsonEnv('FEATURE_RANGES');
  for (const [feature, range] of Object.entries(ranges)) {
    if (typeof range.min !== 'number' || typeof range.max !== 'number' || range.min > range.max) {
      throw new Error(`FEATURE_RANGES.${feature} must be {"min": number, "max": number}, min <= max`);
    }
  }
  return ranges;
}

// One instance drawn uniformly within the training ranges, as the seed did: every request is a
// plausible iris, so no service spends its time on validation errors.
export function randomInstance(ranges) {
  const instance = {};
  for (const [feature, range] of Object.entries(ranges)) {
    instance[feature] = Math.round((range.min + Math.random() * (range.max - range.min)) * 100) / 100;
  }
  return instance;
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

// POST /predict to one service, tagged with the service so every metric can be split by it, and
// checked (the seed never looked at the status: a 5xx counted as a fast success).
export function predict(service, baseUrl, ranges, timeout) {
  const tags = { service: service, name: 'POST /predict' };
  const response = http.post(`${baseUrl}/predict`, JSON.stringify(randomInstance(ranges)), {
    headers: JSON_HEADERS,
    tags: tags,
    timeout: timeout,
  });
  check(response, { 'status is 200': (r) => r.status === 200 }, tags);
  return response;
}

export { fail };
