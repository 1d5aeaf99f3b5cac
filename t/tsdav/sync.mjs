// Licensed under the Apache License, Version 2.0 (see LICENSE).
//
// Drive tsdav's RFC 6578 client (DAVClient.syncCollection) against a server
// and print what tsdav made of the answer, as one JSON object on stdout:
//
//   node sync.mjs BASE_URL COLLECTION_PATH TOKEN LEVEL
//
// TOKEN "" asks for an initial sync; LEVEL is passed to tsdav as is
// ("1" as the number 1, anything else, e.g. "infinite", as text).
//
// Output: { sent: {method, url, headers, body},   what tsdav put on the wire
//           status,                                the HTTP status
//           token,                                 the multistatus' sync-token,
//                                                  where tsdav's own smartCollectionSync
//                                                  reads it (raw.multistatus.syncToken)
//           responses: [{href, status, ok, etag, contentlength, props}],
//           raw }                                  only when the answer was no
//                                                  multistatus (tsdav keeps the body text)
// Exits 0 whenever tsdav returned; 2 on bad arguments, 1 if tsdav threw.
import { DAVClient } from 'tsdav';

const [base, path, token, level] = process.argv.slice(2);
if (base === undefined || path === undefined || token === undefined || level === undefined) {
  process.stderr.write('usage: node sync.mjs BASE_URL COLLECTION_PATH TOKEN LEVEL\n');
  process.exit(2);
}

// Record what tsdav sends, then let the runtime's fetch send it.
let sent = null;
let httpStatus = null;
const recordingFetch = async (url, init) => {
  sent = {
    method: init.method,
    url: String(url),
    headers: init.headers,
    body: typeof init.body === 'string' ? init.body : null,
  };
  const res = await globalThis.fetch(url, init);
  httpStatus = res.status;
  return res;
};

const client = new DAVClient({ serverUrl: base, fetch: recordingFetch });
const url = new URL(path, base).href;

try {
  const result = await client.syncCollection({
    url,
    props: { 'd:getetag': {}, 'd:getcontentlength': {} },
    syncLevel: level === '1' ? 1 : level,
    syncToken: token,
  });
  const out = { sent, status: httpStatus, token: null, responses: [] };
  for (const r of result) {
    const ms = r.raw && typeof r.raw === 'object' ? r.raw.multistatus : undefined;
    if (ms && out.token === null && ms.syncToken !== undefined) out.token = String(ms.syncToken);
    if (!ms) out.raw = r.raw;
    // tsdav maps a multistatus without <response> to one entry without href.
    if (r.href === undefined) continue;
    out.responses.push({
      href: String(r.href),
      status: r.status,
      ok: r.ok,
      etag: r.props?.getetag === undefined ? null : String(r.props.getetag),
      contentlength: r.props?.getcontentlength ?? null,
      props: r.props ?? {},
    });
  }
  process.stdout.write(JSON.stringify(out) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ sent, status: httpStatus, error: String(e && e.stack || e) }) + '\n');
  process.exit(1);
}
