// The support console's script: calls the admin JSON routes of this listener
// with the key typed into the page and renders their answers.
//
// Two rules hold everywhere below:
// - The key is read from the password field at each call and sent only as
//   the X-API-Key header. It never goes into a URL, storage or the DOM.
// - Text from the API (device ids, content ids, Session-Ids, error messages)
//   reaches the page through textContent only, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /** History entries asked for: enough for a support call, one screen. */
  const HISTORY_LIMIT = 50;

  /** The viewer on screen (`user:42`, `session:abc`), or null. */
  let shown = null;
  /** Counts lookups, so that a slow answer to an older one is dropped. */
  let generation = 0;

  /** An answer that was not a 2xx, or no answer at all (status 0). */
  class ApiError extends Error {
    constructor(status, code, msg) {
      super(msg);
      this.status = status;
      this.code = code;
    }
  }

  /** `tag` with attributes and children (strings become text nodes). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** `method path` on this listener with the key as X-API-Key; the parsed JSON body. */
  async function api(method, path, body) {
    const key = $('key').value;
    if (!key) {
      throw new ApiError(0, 'no_key', 'Enter the admin key first.');
    }
    const init = {
      method,
      headers: { 'X-API-Key': key },
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      // Also a key with characters a header cannot carry.
      throw new ApiError(0, 'network', `Could not reach the admin listener: ${error.message}`);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      // Not JSON: the status alone says what happened.
    }
    if (!response.ok) {
      const msg = data && typeof data.msg === 'string' ? data.msg : response.statusText;
      const code = data && typeof data.code === 'string' ? data.code : undefined;
      throw new ApiError(response.status, code, msg);
    }
    return data;
  }

  /** `/admin/viewers/<viewer>`, the viewer percent-encoded (`user%3A42`). */
  function viewerPath(viewer) {
    return `/admin/viewers/${encodeURIComponent(viewer)}`;
  }

  /** One line for a person: what failed and what the service said. */
  function describe(error) {
    if (!(error instanceof ApiError)) {
      return `Unexpected error: ${error && error.message}`;
    }
    if (error.status === 0) {
      return error.message;
    }
    const code = error.code ? ` ${error.code}` : '';
    if (error.status === 401) {
      return `Wrong key (401${code}): ${error.message}`;
    }
    return `Error ${error.status}${code}: ${error.message}`;
  }

  function showError(error) {
    $('notice').hidden = true;
    $('error').textContent = describe(error);
    $('error').hidden = false;
  }

  function showNotice(text) {
    $('error').hidden = true;
    $('notice').textContent = text;
    $('notice').hidden = false;
  }

  function clearMessages() {
    $('error').hidden = true;
    $('notice').hidden = true;
  }

  /** A timestamp in UTC, as the service's logs write it; the raw value as its title. */
  function time(iso) {
    const date = new Date(iso);
    const text = Number.isNaN(date.getTime())
      ? String(iso)
      : `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    return el('time', { datetime: String(iso), title: String(iso) }, text);
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(Number(seconds) || 0));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
    if (m > 0) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
    return `${s} s`;
  }

  /** A device or content id, or a dash when the start did not say. */
  function label(value) {
    return value === undefined || value === null ? el('span', { class: 'none' }, '—') : String(value);
  }

  function renderActive(list) {
    const rows = (list.activeStreams || []).map((lease) =>
      el('tr', { 'data-testid': 'active-row', 'data-stream-id': lease.streamId },
        el('td', {}, el('code', {}, lease.streamId)),
        el('td', { 'data-testid': 'device' }, label(lease.deviceId)),
        el('td', { 'data-testid': 'content' }, label(lease.contentId)),
        el('td', {}, time(lease.startedAt)),
        el('td', {}, time(lease.expiresAt)),
        el('td', {}, revokeButton(lease.streamId))));
    $('active').replaceChildren(...rows);
    $('no-active').hidden = rows.length > 0;
    $('stream-count').textContent = `${list.streamCount} active`;
  }

  function renderHistory(body) {
    const rows = (body.history || []).map((entry) =>
      el('tr', { 'data-testid': 'history-row', 'data-stream-id': entry.streamId },
        el('td', {}, el('code', {}, entry.streamId)),
        el('td', { 'data-testid': 'device' }, label(entry.deviceId)),
        el('td', { 'data-testid': 'content' }, label(entry.contentId)),
        el('td', {}, time(entry.startedAt)),
        el('td', {}, time(entry.endedAt)),
        el('td', {}, duration(entry.durationSeconds)),
        el('td', { 'data-testid': 'reason' }, el('span', { class: `reason ${entry.reason}` }, entry.reason))));
    $('history').replaceChildren(...rows);
    $('no-history').hidden = rows.length > 0;
  }

  function revokeButton(streamId) {
    const button = el('button', { type: 'button', class: 'danger', 'data-testid': 'revoke' }, 'Revoke');
    button.addEventListener('click', () => revoke(streamId, button));
    return button;
  }

  /** Loads `viewer`'s streams and history; drops the answer if a newer lookup started. */
  async function load(viewer) {
    const mine = ++generation;
    const [list, history] = await Promise.all([
      api('GET', `${viewerPath(viewer)}/streams`),
      api('GET', `${viewerPath(viewer)}/history?limit=${HISTORY_LIMIT}`),
    ]);
    if (mine !== generation) return;
    shown = list.viewer;
    for (const id of ['viewer-name', 'limit-viewer']) {
      $(id).textContent = list.viewer;
    }
    renderActive(list);
    renderHistory(history);
    $('viewer').hidden = false;
  }

  /** The viewer the lookup form names, or throws with what is wrong. */
  function requestedViewer() {
    const kind = $('viewer-kind').value;
    const id = $('viewer-id').value.trim();
    if (kind === 'user') {
      if (!/^[0-9]{1,19}$/.test(id)) {
        throw new ApiError(0, 'invalid_viewer', 'A user id is a number (digits only).');
      }
      return `user:${id}`;
    }
    if (!/^[!-~]{1,128}$/.test(id)) {
      throw new ApiError(0, 'invalid_viewer', 'A Session-Id is 1 to 128 visible ASCII characters, no spaces.');
    }
    return `session:${id}`;
  }

  async function lookup(event) {
    event.preventDefault();
    clearMessages();
    try {
      await load(requestedViewer());
    } catch (error) {
      // What is on screen belongs to an earlier lookup: hide it rather than
      // let it pass for the viewer just asked for.
      generation += 1;
      shown = null;
      $('viewer').hidden = true;
      showError(error);
    }
  }

  async function revoke(streamId, button) {
    const viewer = shown;
    button.disabled = true;
    clearMessages();
    try {
      const answer = await api('DELETE', `${viewerPath(viewer)}/streams/${encodeURIComponent(streamId)}`);
      showNotice(answer.ended
        ? `Revoked ${streamId}: its next heartbeat answers 410 revoked.`
        : `${streamId} had already stopped (${answer.reason}).`);
      await load(viewer);
    } catch (error) {
      button.disabled = false;
      showError(error);
    }
  }

  async function setLimit(maxStreams) {
    const viewer = shown;
    clearMessages();
    try {
      const answer = await api('PUT', `${viewerPath(viewer)}/limit`, { maxStreams });
      $('limit-status').textContent = answer.maxStreams === null
        ? `Limit of ${answer.viewer} cleared: the default applies.`
        : `Limit of ${answer.viewer} set to ${answer.maxStreams}.`;
    } catch (error) {
      showError(error);
    }
  }

  function submitLimit(event) {
    event.preventDefault();
    const value = Number($('limit').value);
    if (!Number.isInteger(value) || value < 1 || value > 1000) {
      showError(new ApiError(0, 'invalid_limit', 'A limit is a whole number from 1 to 1000.'));
      return;
    }
    setLimit(value);
  }

  async function refresh() {
    if (shown === null) return;
    clearMessages();
    try {
      await load(shown);
    } catch (error) {
      showError(error);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('lookup-form').addEventListener('submit', lookup);
    // Enter in the key field: look the viewer up again with the new key.
    $('key-form').addEventListener('submit', (event) => {
      event.preventDefault();
      if ($('viewer-id').value) $('lookup-form').requestSubmit();
    });
    $('limit-form').addEventListener('submit', submitLimit);
    $('limit-clear').addEventListener('click', () => setLimit(null));
    $('refresh').addEventListener('click', refresh);
    $('viewer-kind').addEventListener('change', () => {
      $('viewer-id').inputMode = $('viewer-kind').value === 'user' ? 'numeric' : 'text';
    });
    document.body.dataset.ready = 'true';
  });
})();
