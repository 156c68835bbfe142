// The support console as an operator uses it, in headless Chromium.
//
// Run by tests/tests/support_console.rs, which starts the service, prepares
// a user with two active streams and one ended one, and passes the case as
// JSON in SUPPORT_CONSOLE_CASE:
//   {"url", "key", "user", "chromium", "screenshot",
//    "keep":    {"streamId", "deviceId", "contentId"},   stays active
//    "revoke":  {"streamId", "deviceId", "contentId"},   revoked on the page
//    "ended":   {"streamId", "deviceId", "contentId"}}   already in history
// Prints one line per step; exits 1 with the reason on the first failure
// (after a screenshot of the page as it was), 0 when every check passed.
// Every wait is bounded (WAIT), and so is the whole run (WHOLE_RUN).
'use strict';

const { chromium } = require('playwright-core');

const WAIT = 10_000;
const WHOLE_RUN = 90_000;

const watchdog = setTimeout(() => {
  console.error(`FAILED: the run took more than ${WHOLE_RUN / 1000} s`);
  process.exit(1);
}, WHOLE_RUN);

const testCase = JSON.parse(process.env.SUPPORT_CONSOLE_CASE || 'null');
if (!testCase) {
  console.error('FAILED: SUPPORT_CONSOLE_CASE is not set (run this through cargo test --test support_console)');
  process.exit(2);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function step(text) {
  console.log(`- ${text}`);
}

/** Polls `probe` until it returns a truthy value, for at most WAIT ms. */
async function until(what, probe) {
  const deadline = Date.now() + WAIT;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${WAIT / 1000} s waiting for ${what} (last seen: ${JSON.stringify(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The text of each cell of the table rows matching `selector`, row by row. */
function rows(page, selector) {
  return page.$$eval(selector, (trs) => trs.map((tr) => ({
    streamId: tr.dataset.streamId,
    device: tr.querySelector('[data-testid="device"]').textContent,
    content: tr.querySelector('[data-testid="content"]').textContent,
    reason: tr.querySelector('[data-testid="reason"]')?.textContent,
  })));
}

const activeRows = (page) => rows(page, '[data-testid="active-row"]');
const historyRows = (page) => rows(page, '[data-testid="history-row"]');

/** Clicks `target` and returns the answer to the first request `matches`. */
async function clickFor(page, target, matches) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => matches(r.request()), { timeout: WAIT }),
    target.click(),
  ]);
  return response;
}

async function run(page) {
  const { key, user, keep, revoke, ended } = testCase;
  const viewer = `user:${user}`;

  const opened = await page.goto(testCase.url, { waitUntil: 'load' });
  check(opened && opened.status() === 200, `GET ${testCase.url} answered ${opened && opened.status()}`);
  // The script sets this once it has run: the CSP let it load.
  await page.locator('body[data-ready="true"]').waitFor();
  step('the page loads without a key and its script runs under the CSP');

  const wrongKey = `${key.slice(0, -1)}?`;
  await page.getByTestId('key').fill(wrongKey);
  await page.getByTestId('viewer-kind').selectOption('user');
  await page.getByTestId('viewer-id').fill(String(user));
  const refused = await clickFor(page, page.getByTestId('lookup'), (r) => r.url().includes('/admin/viewers/'));
  check(refused.status() === 401, `a lookup with a wrong key answered ${refused.status()}`);
  const error = page.getByTestId('error');
  await error.waitFor({ state: 'visible' });
  const errorText = await error.textContent();
  check(/wrong key/i.test(errorText) && errorText.includes('401') && errorText.includes('X-API-Key'),
    `the 401 is shown as "${errorText}"`);
  check(await page.getByTestId('viewer').isHidden(), 'no viewer data is shown after a 401');
  step(`a wrong key shows: ${errorText}`);

  await page.getByTestId('key').fill(key);
  await page.getByTestId('lookup').click();
  await page.getByTestId('viewer').waitFor({ state: 'visible' });
  check(await error.isHidden(), 'the 401 message is gone once the lookup succeeds');
  check(await page.getByTestId('viewer-name').textContent() === viewer, 'the viewer is named');
  const active = await until('both active streams', async () => {
    const shown = await activeRows(page);
    return shown.length === 2 && shown;
  });
  for (const stream of [keep, revoke]) {
    const row = active.find((r) => r.streamId === stream.streamId);
    check(row, `active stream ${stream.streamId} is listed (shown: ${JSON.stringify(active)})`);
    check(row.device === stream.deviceId && row.content === stream.contentId,
      `stream ${stream.streamId} shows device/content ${row.device}/${row.content}, not ${stream.deviceId}/${stream.contentId}`);
  }
  const before = await historyRows(page);
  check(before.length === 1 && before[0].streamId === ended.streamId && before[0].reason === 'ended',
    `the history shows the ended stream (shown: ${JSON.stringify(before)})`);
  // A label is shown as the text it is, markup and all.
  check(before[0].device === ended.deviceId && before[0].content === ended.contentId,
    `the ended stream's labels are shown verbatim (shown: ${JSON.stringify(before[0])})`);
  check(await page.locator('tbody b, tbody img, tbody script').count() === 0, 'a label became markup');
  step(`the right key lists ${active.length} active streams and ${before.length} ended one`);

  const revokeButton = page.locator(`[data-testid="active-row"][data-stream-id="${revoke.streamId}"] [data-testid="revoke"]`);
  const revoked = await clickFor(page, revokeButton, (r) => r.method() === 'DELETE');
  check(revoked.status() === 200, `the revoke answered ${revoked.status()}`);
  await until('the revoked stream to leave the active list and head the history', async () => {
    const now = await activeRows(page);
    const history = await historyRows(page);
    return now.length === 1 && now[0].streamId === keep.streamId
      && history.length === 2 && history[0].streamId === revoke.streamId && history[0].reason === 'revoked'
      && history[1].streamId === ended.streamId;
  });
  const notice = await page.getByTestId('notice').textContent();
  check(notice.includes(revoke.streamId), `the notice names the revoked stream: "${notice}"`);
  step(`revoke: ${notice}`);

  await page.getByTestId('limit-input').fill('5');
  const set = await clickFor(page, page.getByTestId('limit-set'), (r) => r.method() === 'PUT');
  check(set.request().postData() === '{"maxStreams":5}', `the limit body was ${set.request().postData()}`);
  const setAnswer = await set.json();
  check(set.status() === 200 && setAnswer.maxStreams === 5 && setAnswer.viewer === viewer,
    `setting the limit answered ${set.status()} ${JSON.stringify(setAnswer)}`);
  await until('the limit of 5 to be shown', async () =>
    (await page.getByTestId('limit-status').textContent()) === `Limit of ${viewer} set to 5.`);
  step('the limit is set to 5');
  // In force: with 1 stream active, 4 more are admitted and the next is
  // refused at 5 (through the public REST API); the 4 are ended again.
  const extra = [];
  for (let n = 0; n < 5; n += 1) {
    const started = await fetch(`${testCase.public}/api/users/${user}/streams`, { method: 'POST' });
    const body = await started.json();
    if (n < 4) {
      check(started.status === 201, `start ${n + 2} under a limit of 5 answered ${started.status} ${JSON.stringify(body)}`);
      extra.push(body.streamId);
    } else {
      check(started.status === 409 && body.maxStreams === 5,
        `the 6th start under a limit of 5 answered ${started.status} ${JSON.stringify(body)}`);
    }
  }
  for (const id of extra) {
    const gone = await fetch(`${testCase.public}/api/users/${user}/streams/${id}`, { method: 'DELETE' });
    check(gone.status === 200, `ending ${id} answered ${gone.status}`);
  }
  step('the limit of 5 admits a 5th stream and refuses a 6th');

  const cleared = await clickFor(page, page.getByTestId('limit-clear'), (r) => r.method() === 'PUT');
  check(cleared.request().postData() === '{"maxStreams":null}', `the clear body was ${cleared.request().postData()}`);
  const clearAnswer = await cleared.json();
  check(cleared.status() === 200 && clearAnswer.maxStreams === null,
    `clearing the limit answered ${cleared.status()} ${JSON.stringify(clearAnswer)}`);
  await until('the cleared limit to be shown', async () =>
    (await page.getByTestId('limit-status').textContent()) === `Limit of ${viewer} cleared: the default applies.`);
  step('the limit is cleared');

  return { key, wrongKey };
}

/** Every request the page made: none may carry a key in its URL, each API call one in X-API-Key. */
async function checkRequests(requests, { key, wrongKey }) {
  check(requests.length > 0, 'no request was recorded');
  const secrets = [key, wrongKey].flatMap((k) => [k, encodeURIComponent(k)]);
  let apiCalls = 0;
  for (const request of requests) {
    const url = request.url();
    for (const secret of secrets) {
      check(!url.includes(secret), `the key appears in the URL ${url}`);
    }
    const headers = await request.allHeaders();
    check(!('referer' in headers), `${url} sent a Referer (${headers.referer})`);
    if (new URL(url).pathname.startsWith('/admin/viewers/')) {
      apiCalls += 1;
      check([key, wrongKey].includes(headers['x-api-key']), `${request.method()} ${url} carried no X-API-Key`);
    }
  }
  check(apiCalls >= 6, `only ${apiCalls} admin API calls were seen`);
  step(`${requests.length} requests (${apiCalls} admin API calls): no key in any URL, no Referer`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: testCase.chromium,
    timeout: WAIT,
    // As root in a container: no sandbox. The rest keeps Chromium from
    // reaching for the network (updates, sync, QUIC) that is closed here.
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.setDefaultNavigationTimeout(WAIT);
    const requests = [];
    page.on('request', (request) => requests.push(request));
    const problems = [];
    page.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
    page.on('dialog', (dialog) => {
      problems.push(`a dialog opened: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });

    const keys = await run(page);
    await checkRequests(requests, keys);
    const stored = await page.evaluate(() => JSON.stringify([
      document.cookie, Object.entries(localStorage), Object.entries(sessionStorage)]));
    check(!stored.includes(keys.key), 'the key was stored in a cookie or web storage');
    check(problems.length === 0, `the page reported problems:\n${problems.join('\n')}`);
    step('no CSP violation, script error or dialog; nothing stored');
  } finally {
    if (page) {
      await page.screenshot({ path: testCase.screenshot, fullPage: true, timeout: WAIT })
        .then(() => console.log(`screenshot: ${testCase.screenshot}`))
        .catch((error) => console.error(`no screenshot: ${error.message}`));
    }
    await browser.close();
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
    console.log('support console: every check passed');
  },
  (error) => {
    console.error(`FAILED: ${error && error.stack ? error.stack : error}`);
    process.exit(1);
  },
);
