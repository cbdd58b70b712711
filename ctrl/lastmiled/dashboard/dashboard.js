// SPDX-License-Identifier: Apache-2.0
// The /ui dashboard's logic: polls /metrics every second, parses the Prometheus text and fills
// the page. Every shown number carries its raw value in data-value so tests can compare it
// with /metrics. Label values are user data: they only ever reach the page as textContent or
// attribute values, never as markup.
'use strict';

(function () {
    const kPollMs = 1000;
    const kHistory = 120;  // chart points: two minutes at one poll per second

    // ---- Prometheus text format 0.0.4 ----

    function parseValue(token) {
        switch (token) {
            case '+Inf':
            case 'Inf':
                return Infinity;
            case '-Inf':
                return -Infinity;
            case 'NaN':
                return NaN;
            default:
                return Number(token);
        }
    }

    // One sample line into {name, labels, value}; null for anything malformed, so one odd
    // line never blanks the whole page.
    function parseSample(line) {
        const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
        if (!nameMatch) {
            return null;
        }
        const name = nameMatch[0];
        const labels = Object.create(null);
        let i = name.length;
        if (line[i] === '{') {
            ++i;
            for (;;) {
                while (line[i] === ' ' || line[i] === ',') {
                    ++i;
                }
                if (line[i] === '}') {
                    ++i;
                    break;
                }
                const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
                if (!labelMatch) {
                    return null;
                }
                i += labelMatch[0].length;
                if (line[i] !== '=' || line[i + 1] !== '"') {
                    return null;
                }
                i += 2;
                let value = '';
                for (;;) {
                    if (i >= line.length) {
                        return null;
                    }
                    const c = line[i++];
                    if (c === '"') {
                        break;
                    }
                    if (c === '\\') {
                        const e = line[i++];
                        value += e === 'n' ? '\n' : e;
                    } else {
                        value += c;
                    }
                }
                labels[labelMatch[0]] = value;
            }
        }
        const rest = line.slice(i).trim().split(/\s+/);
        if (rest.length < 1 || rest[0] === '') {
            return null;
        }
        const value = parseValue(rest[0]);
        if (Number.isNaN(value) && rest[0] !== 'NaN') {
            return null;
        }
        return {name, labels, value};
    }

    // Samples grouped by metric name.
    function parseMetrics(text) {
        const byName = new Map();
        for (const raw of text.split('\n')) {
            const line = raw.trim();
            if (line === '' || line[0] === '#') {
                continue;
            }
            const s = parseSample(line);
            if (!s) {
                continue;
            }
            if (!byName.has(s.name)) {
                byName.set(s.name, []);
            }
            byName.get(s.name).push(s);
        }
        return byName;
    }

    class Snapshot {
        constructor(text, time) {
            this.samples = parseMetrics(text);
            this.time = time;
        }

        has(name) {
            return this.samples.has(name);
        }

        list(name) {
            return this.samples.get(name) || [];
        }

        // Sum over every series of `name` (undefined when the family is absent).
        sum(name) {
            const l = this.samples.get(name);
            if (!l) {
                return undefined;
            }
            return l.reduce((a, s) => a + s.value, 0);
        }

        // Values keyed by the given label names joined with NUL; series that share the key
        // are summed.
        by(name, labelNames) {
            const out = new Map();
            for (const s of this.list(name)) {
                const key = labelNames.map((l) => s.labels[l] || '').join('\u0000');
                const e = out.get(key);
                if (e) {
                    e.value += s.value;
                } else {
                    out.set(key, {labels: s.labels, value: s.value});
                }
            }
            return out;
        }
    }

    // ---- formatting ----

    function fixed(v, digits) {
        if (v === undefined || v === null || !Number.isFinite(v)) {
            return '–';
        }
        return v.toFixed(digits);
    }

    function count(v) {
        if (v === undefined || !Number.isFinite(v)) {
            return '–';
        }
        // Grouped by thin spaces, independent of the browser's locale.
        const s = String(Math.round(v));
        return s.replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
    }

    function scaled(v, unit, base, prefixes) {
        if (v === undefined || !Number.isFinite(v)) {
            return '–';
        }
        let i = 0;
        while (Math.abs(v) >= base && i < prefixes.length - 1) {
            v /= base;
            ++i;
        }
        return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + prefixes[i] + unit;
    }

    function bytes(v) {
        return scaled(v, 'B', 1024, ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi']);
    }

    function bytesPerSecond(v) {
        return v === undefined ? '–' : bytes(v) + '/s';
    }

    function perSecond(v) {
        return v === undefined ? '–' : fixed(v, v < 10 ? 2 : 1);
    }

    function percent(v) {
        return v === undefined || !Number.isFinite(v) ? '–' : (100 * v).toFixed(1) + ' %';
    }

    function seconds(v) {
        if (v === undefined || !Number.isFinite(v)) {
            return '–';
        }
        if (v < 1e-3) {
            return (v * 1e6).toFixed(0) + ' µs';
        }
        if (v < 1) {
            return (v * 1e3).toFixed(v < 0.01 ? 2 : 1) + ' ms';
        }
        return v.toFixed(2) + ' s';
    }

    function days(v) {
        if (v === undefined || !Number.isFinite(v)) {
            return '–';
        }
        return (v < 0 ? 'expired ' + (-v).toFixed(1) + ' d ago' : v.toFixed(1) + ' d');
    }

    // ---- page updates ----

    // Sets the element's raw value (data-value) and its shown text.
    function show(id, value, text) {
        const el = document.getElementById(id);
        if (!el) {
            return;
        }
        el.dataset.value = value === undefined || !Number.isFinite(value) ? '' : String(value);
        el.textContent = text;
    }

    function cell(tr, field, text, value, cls) {
        const td = document.createElement('td');
        td.dataset.field = field;
        if (value !== undefined) {
            td.dataset.value = Number.isFinite(value) ? String(value) : '';
            td.className = 'num';
        }
        if (cls) {
            td.classList.add(cls);
        }
        td.textContent = text;
        tr.appendChild(td);
        return td;
    }

    function fillTable(tableId, rows) {
        const tbody = document.querySelector('#' + tableId + ' tbody');
        if (tbody) {
            tbody.replaceChildren(...rows);
        }
    }

    // Per-second rate of a counter between two snapshots; undefined without a previous one.
    // A counter that went down means lastmiled restarted: count from zero again.
    function rateOf(cur, prev, curValue, prevValue) {
        if (!prev || curValue === undefined) {
            return undefined;
        }
        const dt = (cur.time - prev.time) / 1000;
        if (dt <= 0) {
            return undefined;
        }
        const delta = curValue - (prevValue || 0);
        return (delta < 0 ? curValue : delta) / dt;
    }

    function rate(cur, prev, name) {
        return rateOf(cur, prev, cur.sum(name), prev ? prev.sum(name) : undefined);
    }

    // histogram_quantile as Prometheus does it: linear interpolation inside the bucket that
    // holds the rank; a rank in the +Inf bucket answers the highest finite bound.
    function quantile(q, buckets) {
        if (buckets.length === 0) {
            return undefined;
        }
        const total = buckets[buckets.length - 1].count;
        if (!(total > 0)) {
            return undefined;
        }
        const rank = q * total;
        let lowerBound = 0;
        let lowerCount = 0;
        for (const b of buckets) {
            if (b.count >= rank) {
                if (b.le === Infinity) {
                    return lowerBound;
                }
                const inBucket = b.count - lowerCount;
                if (inBucket <= 0) {
                    return b.le;
                }
                return lowerBound + (b.le - lowerBound) * ((rank - lowerCount) / inBucket);
            }
            lowerBound = b.le;
            lowerCount = b.count;
        }
        return lowerBound;
    }

    function buckets(snap, name) {
        const out = [];
        for (const [, e] of snap.by(name, ['le'])) {
            out.push({le: parseValue(e.labels.le), count: e.value});
        }
        out.sort((a, b) => a.le - b.le);
        return out;
    }

    // Bucket snapshots of the last polls: percentiles come from the deltas over this window,
    // so one quiet second does not flip the numbers back to the since-start view.
    const kLatencyWindow = 10;
    const latencyHistory = [];

    function updateLatency(cur) {
        const name = 'lastmile_handshake_duration_seconds';
        const now = buckets(cur, name + '_bucket');
        const totalCount = cur.sum(name + '_count');
        latencyHistory.push({time: cur.time, buckets: now});
        while (latencyHistory.length > kLatencyWindow + 1) {
            latencyHistory.shift();
        }
        let window = 'since start';
        let use = now;
        let observed = totalCount;
        const oldest = latencyHistory[0];
        if (latencyHistory.length > 1 && oldest.buckets.length > 0) {
            const before = new Map(oldest.buckets.map((b) => [b.le, b.count]));
            const delta = now.map((b) => ({le: b.le, count: b.count - (before.get(b.le) || 0)}));
            const n = delta.length ? delta[delta.length - 1].count : 0;
            // A negative delta means lastmiled restarted inside the window: keep since-start.
            if (n > 0 && delta.every((b) => b.count >= 0)) {
                use = delta;
                observed = n;
                window = 'last ' + ((cur.time - oldest.time) / 1000).toFixed(0) + ' s';
            }
        }
        const p50 = quantile(0.5, use);
        const p99 = quantile(0.99, use);
        show('latency-p50', p50, seconds(p50));
        show('latency-p99', p99, seconds(p99));
        show('latency-window', undefined, now.length ? window : 'no histogram');
        show('latency-count', observed, count(observed));
    }

    function updateTiles(cur, prev) {
        const sent = cur.sum('lastmile_backend_sent_bytes_total');
        const received = cur.sum('lastmile_client_sent_bytes_total');
        const toBackend = rate(cur, prev, 'lastmile_backend_sent_bytes_total');
        const toClient = rate(cur, prev, 'lastmile_client_sent_bytes_total');
        show('rate-backend-bytes', toBackend, bytesPerSecond(toBackend));
        show('rate-client-bytes', toClient, bytesPerSecond(toClient));
        show('total-backend-bytes', sent, bytes(sent));
        show('total-client-bytes', received, bytes(received));

        const accepted = cur.sum('lastmile_connections_accepted_total');
        const acceptedRate = rate(cur, prev, 'lastmile_connections_accepted_total');
        show('rate-accepted', acceptedRate, perSecond(acceptedRate));
        show('connections-active', cur.sum('lastmile_connections_active'),
             count(cur.sum('lastmile_connections_active')));
        show('total-accepted', accepted, count(accepted));
        show('total-closed', cur.sum('lastmile_connections_closed_total'),
             count(cur.sum('lastmile_connections_closed_total')));
        const byPolicy = cur.by('lastmile_connections_closed_total', ['reason']).get('policy_change');
        show('total-closed-policy', byPolicy && byPolicy.value, count(byPolicy && byPolicy.value));
        show('total-plain-backend', cur.sum('lastmile_plain_backend_connections_total'),
             count(cur.sum('lastmile_plain_backend_connections_total')));

        const full = cur.sum('lastmile_handshakes_full_total');
        const resumed = cur.sum('lastmile_handshakes_resumed_total');
        const handshakes = full === undefined && resumed === undefined ? undefined : (full || 0) + (resumed || 0);
        const fullRate = rate(cur, prev, 'lastmile_handshakes_full_total');
        const resumedRate = rate(cur, prev, 'lastmile_handshakes_resumed_total');
        const handshakeRate = fullRate === undefined ? undefined : fullRate + (resumedRate || 0);
        show('rate-handshakes', handshakeRate, perSecond(handshakeRate));
        show('total-handshakes-full', full, count(full));
        show('total-handshakes-resumed', resumed, count(resumed));
        show('total-handshakes', handshakes, count(handshakes));
        const ratio = handshakes > 0 ? resumed / handshakes : undefined;
        show('resumption-percent', ratio, percent(ratio));

        const hits = cur.sum('lastmile_warm_pool_hits_total');
        const misses = cur.sum('lastmile_warm_pool_misses_total');
        const lookups = (hits || 0) + (misses || 0);
        const hitRatio = lookups > 0 ? hits / lookups : undefined;
        show('warm-hit-percent', hitRatio, percent(hitRatio));
        show('warm-pool-connections', cur.sum('lastmile_warm_pool_connections'),
             count(cur.sum('lastmile_warm_pool_connections')));
        show('total-warm-hits', hits, count(hits));
        show('total-warm-misses', misses, count(misses));
        show('total-warm-discarded', cur.sum('lastmile_warm_pool_discarded_total'),
             count(cur.sum('lastmile_warm_pool_discarded_total')));

        for (const [id, name, format] of [
            ['backend-connections', 'lastmile_backend_connections', count],
            ['backend-connections-limit', 'lastmile_backend_connections_limit', count],
            ['buffer-memory', 'lastmile_buffer_memory_bytes', bytes],
            ['buffer-memory-limit', 'lastmile_buffer_memory_limit_bytes', bytes],
        ]) {
            show(id, cur.sum(name), format(cur.sum(name)));
        }

        const failures = cur.sum('lastmile_failures_total');
        const failureRate = rate(cur, prev, 'lastmile_failures_total');
        show('rate-failures', failureRate, perSecond(failureRate));
        show('total-failures', failures, count(failures));
        show('total-endpoint-retries', cur.sum('lastmile_endpoint_retries_total'),
             count(cur.sum('lastmile_endpoint_retries_total')));
        show('total-truncations', cur.sum('lastmile_backend_truncations_total'),
             count(cur.sum('lastmile_backend_truncations_total')));

        show('workers', cur.sum('lastmile_workers'), count(cur.sum('lastmile_workers')));
        show('profile-generation', cur.sum('lastmile_profile_generation'),
             count(cur.sum('lastmile_profile_generation')));
        show('compile-failures', cur.sum('lastmile_profile_compile_failures_total'),
             count(cur.sum('lastmile_profile_compile_failures_total')));

        return {toBackend, toClient, fullRate, resumedRate};
    }

    function updateEngines(cur) {
        const sessions = cur.by('lastmile_engine_sessions_total', ['engine']);
        const usable = cur.by('lastmile_record_engine_usable', ['engine']);
        const names = new Set([...sessions.keys(), ...usable.keys()]);
        let total = 0;
        for (const [, e] of sessions) {
            total += e.value;
        }
        const rows = [];
        for (const name of [...names].sort()) {
            const n = sessions.has(name) ? sessions.get(name).value : undefined;
            const share = n !== undefined && total > 0 ? n / total : undefined;
            const tr = document.createElement('tr');
            tr.dataset.engine = name;
            cell(tr, 'engine', name);
            const u = usable.has(name) ? usable.get(name).value : undefined;
            cell(tr, 'usable', u === undefined ? '–' : u > 0 ? 'yes' : 'no', undefined, u === 0 ? 'warn' : '');
            cell(tr, 'sessions', count(n), n);
            const td = cell(tr, 'share', '', share);
            const bar = document.createElement('span');
            bar.className = 'bar';
            bar.style.width = share === undefined ? '0' : (share * 2.5).toFixed(2) + 'em';
            td.appendChild(bar);
            td.appendChild(document.createTextNode(percent(share)));
            rows.push(tr);
        }
        fillTable('engines', rows);
    }

    function updateFailures(cur, prev) {
        const now = cur.by('lastmile_failures_total', ['reason']);
        const before = prev ? prev.by('lastmile_failures_total', ['reason']) : undefined;
        const entries = [...now.entries()].sort((a, b) => b[1].value - a[1].value || (a[0] < b[0] ? -1 : 1));
        const rows = [];
        for (const [reason, e] of entries) {
            const tr = document.createElement('tr');
            tr.dataset.reason = reason;
            cell(tr, 'reason', reason, undefined, e.value > 0 ? 'bad' : '');
            cell(tr, 'total', count(e.value), e.value);
            const r = before ? rateOf(cur, prev, e.value, before.has(reason) ? before.get(reason).value : 0) : undefined;
            cell(tr, 'rate', perSecond(r), r);
            rows.push(tr);
        }
        fillTable('failures', rows);
    }

    function updateWorkers(cur, prev) {
        const active = cur.by('lastmile_worker_connections_active', ['worker']);
        const submits = cur.by('lastmile_worker_ring_submits_total', ['worker']);
        const before = prev ? prev.by('lastmile_worker_ring_submits_total', ['worker']) : undefined;
        const ids = [...new Set([...active.keys(), ...submits.keys()])].sort((a, b) => Number(a) - Number(b));
        const rows = [];
        for (const id of ids) {
            const tr = document.createElement('tr');
            tr.dataset.worker = id;
            cell(tr, 'worker', id);
            const a = active.has(id) ? active.get(id).value : undefined;
            cell(tr, 'active', count(a), a);
            const s = submits.has(id) ? submits.get(id).value : undefined;
            const r = before && s !== undefined ? rateOf(cur, prev, s, before.has(id) ? before.get(id).value : 0) : undefined;
            cell(tr, 'ring-submit-rate', perSecond(r), r);
            rows.push(tr);
        }
        fillTable('workers-table', rows);
    }

    function updateListeners(cur, prev) {
        const labels = ['project', 'namespace', 'gateway', 'listener'];
        const total = cur.by('lastmile_listener_connections_total', labels);
        const active = cur.by('lastmile_listener_connections_active', labels);
        const before = prev ? prev.by('lastmile_listener_connections_total', labels) : undefined;
        const rows = [];
        for (const key of [...new Set([...total.keys(), ...active.keys()])].sort()) {
            const l = (total.get(key) || active.get(key)).labels;
            const tr = document.createElement('tr');
            tr.dataset.listener = key.split('\u0000').join('/');
            const project = l.project && l.project !== 'default' ? l.project + ': ' : '';
            cell(tr, 'listener', project + (l.namespace || '') + '/' + (l.gateway || '') + ' / ' + (l.listener || ''));
            const a = active.has(key) ? active.get(key).value : undefined;
            cell(tr, 'active', count(a), a);
            const t = total.has(key) ? total.get(key).value : undefined;
            cell(tr, 'total', count(t), t);
            const r = before && t !== undefined ? rateOf(cur, prev, t, before.has(key) ? before.get(key).value : 0) : undefined;
            cell(tr, 'rate', perSecond(r), r);
            rows.push(tr);
        }
        fillTable('listeners', rows);
    }

    const kServiceLabels = ['project', 'namespace', 'service', 'port'];

    function updateBackends(cur, prev) {
        const info = cur.by('lastmile_service_info', kServiceLabels);
        const conns = cur.by('lastmile_service_connections_total', kServiceLabels);
        const connsBefore = prev ? prev.by('lastmile_service_connections_total', kServiceLabels) : undefined;
        const active = cur.by('lastmile_service_connections_active', kServiceLabels);
        const sent = cur.by('lastmile_service_sent_bytes_total', kServiceLabels);
        const received = cur.by('lastmile_service_received_bytes_total', kServiceLabels);
        const expiry = cur.by('lastmile_service_certificate_expiry_timestamp_seconds', kServiceLabels);
        const handshakes = cur.by('lastmile_service_handshakes_total', kServiceLabels.concat(['result']));

        const keys = new Set([...info.keys(), ...conns.keys(), ...active.keys(), ...expiry.keys()]);
        const labelsOf = new Map();
        for (const m of [info, conns, active, sent, received, expiry]) {
            for (const [k, e] of m) {
                if (!labelsOf.has(k)) {
                    labelsOf.set(k, e.labels);
                }
            }
        }
        const result = (key, r) => {
            const e = handshakes.get(key + '\u0000' + r);
            return e ? e.value : 0;
        };
        const value = (m, key) => (m.has(key) ? m.get(key).value : undefined);
        const nowSeconds = Date.now() / 1000;

        const rows = [];
        for (const key of [...keys].sort()) {
            const l = labelsOf.get(key);
            const i = info.has(key) ? info.get(key).labels : {};
            const tr = document.createElement('tr');
            tr.dataset.backend = l.project + '/' + l.namespace + '/' + l.service + ':' + l.port;
            cell(tr, 'project', l.project || '');
            cell(tr, 'namespace', l.namespace || '');
            cell(tr, 'service', (l.service || '') + ':' + (l.port || ''));
            cell(tr, 'policy', i.policy || '–');
            cell(tr, 'sni', i.sni || '–');
            cell(tr, 'engine', i.engine || '–');
            const a = value(active, key);
            cell(tr, 'active', count(a), a);
            const c = value(conns, key);
            cell(tr, 'connections', count(c), c);
            const cr = connsBefore && c !== undefined ? rateOf(cur, prev, c, value(connsBefore, key)) : undefined;
            cell(tr, 'connection-rate', perSecond(cr), cr);
            const s = value(sent, key);
            cell(tr, 'sent-bytes', bytes(s), s);
            const r = value(received, key);
            cell(tr, 'received-bytes', bytes(r), r);
            const full = result(key, 'full');
            const resumed = result(key, 'resumed');
            const failed = result(key, 'failed');
            cell(tr, 'handshakes', count(full + resumed), full + resumed);
            cell(tr, 'handshakes-failed', count(failed), failed, failed > 0 ? 'bad' : '');
            const ratio = full + resumed > 0 ? resumed / (full + resumed) : undefined;
            cell(tr, 'resumed-percent', percent(ratio), ratio);
            const ts = value(expiry, key);
            const d = ts !== undefined && ts > 0 ? (ts - nowSeconds) / 86400 : undefined;
            cell(tr, 'cert-expiry-days', days(d), d, d === undefined ? '' : d < 7 ? 'bad' : d < 30 ? 'warn' : '');
            rows.push(tr);
        }
        fillTable('backends', rows);
        document.getElementById('backends-empty').hidden = rows.length > 0;
    }

    function updateCas(cur) {
        const labels = ['project', 'namespace', 'policy', 'subject'];
        const expiry = cur.by('lastmile_ca_certificate_expiry_timestamp_seconds', labels);
        const nowSeconds = Date.now() / 1000;
        const rows = [];
        for (const key of [...expiry.keys()].sort()) {
            const e = expiry.get(key);
            const tr = document.createElement('tr');
            tr.dataset.ca = key.split('\u0000').join('/');
            cell(tr, 'project', e.labels.project || '');
            cell(tr, 'namespace', e.labels.namespace || '');
            cell(tr, 'policy', e.labels.policy || '');
            cell(tr, 'subject', e.labels.subject || '');
            const d = e.value > 0 ? (e.value - nowSeconds) / 86400 : undefined;
            cell(tr, 'expiry-days', days(d), d, d === undefined ? '' : d < 7 ? 'bad' : d < 30 ? 'warn' : '');
            rows.push(tr);
        }
        fillTable('cas', rows);
    }

    // ---- charts ----

    const history = [];

    function drawChart(id, seriesA, seriesB, format) {
        const canvas = document.getElementById(id);
        if (!canvas || !canvas.getContext) {
            return;
        }
        const ratio = window.devicePixelRatio || 1;
        const width = canvas.clientWidth || canvas.width;
        const height = canvas.clientHeight || canvas.height;
        if (canvas.width !== Math.round(width * ratio)) {
            canvas.width = Math.round(width * ratio);
            canvas.height = Math.round(height * ratio);
        }
        const ctx = canvas.getContext('2d');
        ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect(0, 0, width, height);
        const style = getComputedStyle(document.documentElement);
        let max = 0;
        for (const v of seriesA.concat(seriesB)) {
            if (Number.isFinite(v) && v > max) {
                max = v;
            }
        }
        const top = 14;
        const plotHeight = height - top - 2;
        ctx.strokeStyle = style.getPropertyValue('--line') || '#333';
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.moveTo(0, top + 0.5);
        ctx.lineTo(width, top + 0.5);
        ctx.moveTo(0, height - 1.5);
        ctx.lineTo(width, height - 1.5);
        ctx.stroke();
        ctx.fillStyle = style.getPropertyValue('--muted') || '#888';
        ctx.font = '11px sans-serif';
        ctx.fillText('max ' + format(max), 2, 11);
        const plot = (series, color) => {
            ctx.strokeStyle = color;
            ctx.lineWidth = 1.5;
            ctx.beginPath();
            let started = false;
            series.forEach((v, i) => {
                if (!Number.isFinite(v)) {
                    started = false;
                    return;
                }
                const x = width - (series.length - 1 - i) * (width / (kHistory - 1));
                const y = top + plotHeight - (max > 0 ? (v / max) * plotHeight : 0);
                if (started) {
                    ctx.lineTo(x, y);
                } else {
                    ctx.moveTo(x, y);
                    started = true;
                }
            });
            ctx.stroke();
        };
        plot(seriesA, (style.getPropertyValue('--c1') || '#4fb3ff').trim());
        plot(seriesB, (style.getPropertyValue('--c2') || '#f5a623').trim());
    }

    function updateCharts(rates) {
        history.push(rates);
        while (history.length > kHistory) {
            history.shift();
        }
        drawChart('chart-throughput', history.map((h) => h.toBackend), history.map((h) => h.toClient),
                  bytesPerSecond);
        drawChart('chart-handshakes', history.map((h) => h.fullRate), history.map((h) => h.resumedRate),
                  (v) => perSecond(v) + '/s');
    }

    // ---- polling ----

    let previous = null;
    let polls = 0;

    function setStatus(state, text) {
        const el = document.getElementById('status');
        el.dataset.state = state;
        el.textContent = text;
    }

    function render(text) {
        const cur = new Snapshot(text, Date.now());
        const rates = updateTiles(cur, previous);
        updateLatency(cur);
        updateEngines(cur);
        updateFailures(cur, previous);
        updateListeners(cur, previous);
        updateWorkers(cur, previous);
        updateBackends(cur, previous);
        updateCas(cur);
        updateCharts(rates);
        previous = cur;
        ++polls;
        show('polls', polls, count(polls));
        const updated = new Date(cur.time);
        show('last-update', cur.time, 'updated ' + updated.toLocaleTimeString());
        document.getElementById('error').textContent = '';
        setStatus('live', 'live');
    }

    async function poll() {
        try {
            const response = await fetch('/metrics', {cache: 'no-store'});
            if (!response.ok) {
                throw new Error('/metrics answered ' + response.status);
            }
            render(await response.text());
        } catch (e) {
            setStatus('error', 'unreachable');
            document.getElementById('error').textContent = String(e && e.message ? e.message : e);
        } finally {
            setTimeout(poll, kPollMs);
        }
    }

    poll();
})();
