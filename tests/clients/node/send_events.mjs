// Sends a scenario through Segment's Node library (@segment/analytics-node), unchanged.
//
//   node send_events.mjs BASE_URL WRITE_KEY RUN_ID SCENARIO_JSON
//
// SCENARIO_JSON: {"run": RUN_ID, "flushAt": N, "calls": [{"method": "track", "params": {...}}, ...]}
// where params are exactly the library's call parameters (userId, event, properties, context,
// integrations, timestamp, messageId, ...). Prints one JSON line with what the library did (library
// version, each HTTP request's batch size and answer, errors) and exits non-zero if anything failed.

import { readFileSync } from 'node:fs'
import { Analytics } from '@segment/analytics-node'

const [baseUrl, writeKey, runId, scenarioPath] = process.argv.slice(2)
if (!baseUrl || !writeKey || !runId || !scenarioPath) {
  console.error('usage: node send_events.mjs BASE_URL WRITE_KEY RUN_ID SCENARIO_JSON')
  process.exit(2)
}
const scenario = JSON.parse(readFileSync(scenarioPath, 'utf8'))
if (scenario.run !== runId) {
  console.error(`scenario is for run ${scenario.run}, not ${runId}`)
  process.exit(2)
}
const pkg = JSON.parse(
  readFileSync(new URL('./node_modules/@segment/analytics-node/package.json', import.meta.url), 'utf8')
)

const analytics = new Analytics({
  writeKey,
  host: baseUrl,
  flushAt: scenario.flushAt ?? 15,
  flushInterval: 200,
  maxRetries: 1,
  httpRequestTimeout: 10000,
})

const requests = []
const responses = []
const errors = []
analytics.on('http_request', (request) => {
  let batchSize = null
  let bodyWriteKey = null
  try {
    const body = JSON.parse(request.body)
    batchSize = body.batch.length
    bodyWriteKey = body.writeKey ?? null
  } catch (e) {
    errors.push(`could not read request body: ${e}`)
  }
  requests.push({
    url: request.url,
    method: request.method,
    authorization: request.headers.Authorization ?? null,
    contentType: request.headers['Content-Type'] ?? null,
    batchSize,
    bodyWriteKey,
  })
})
analytics.on('http_response', (response) => {
  responses.push({ url: response.url, status: response.status })
})
analytics.on('error', (err) => {
  errors.push(`error event: ${err?.code ?? ''} ${err?.reason ?? err?.message ?? JSON.stringify(err)}`)
})

for (const call of scenario.calls) {
  const method = analytics[call.method]
  if (typeof method !== 'function') {
    errors.push(`unknown method ${call.method}`)
    continue
  }
  try {
    method.call(analytics, call.params, (err) => {
      if (err) errors.push(`${call.method} callback: ${err?.reason ?? err?.message ?? err}`)
    })
  } catch (e) {
    errors.push(`${call.method} threw: ${e?.message ?? e}`)
  }
}

try {
  await analytics.closeAndFlush({ timeout: 60000 })
} catch (e) {
  errors.push(`closeAndFlush: ${e?.message ?? e}`)
}

const failed = errors.length > 0 || responses.some((r) => r.status !== 200) || responses.length !== requests.length
console.log(
  JSON.stringify({
    run: runId,
    library: { name: pkg.name, version: pkg.version },
    requests,
    responses,
    errors,
  })
)
process.exit(failed ? 1 : 0)
