// The Bourse live dashboard: reads the snapshots of GET /v1/dashboard/ws and shows
// them. Plain JavaScript, no libraries; charts are drawn by hand on <canvas>.
//
// A snapshot is {"type": "dashboard", "time_ms", "tick_ms", "last_seq", "viewers",
// "metrics": {"<series as /metrics writes it>": number, ...}, "markets": [{"market",
// "market_seq", "bid": [price, qty] | null, "ask": ..., "last_trade": {...} | null}]}.
// Each series gets one element, made the first time it is seen and updated in place
// after: data-metric is the series, data-value the raw number, the text the number
// formatted. Rates are computed here from two successive snapshots.
'use strict';

(() => {
  const HISTORY_POINTS = 240; // two minutes at one snapshot every 500 ms
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  const QUANTILES = { '0.5': 'p50', '0.9': 'p90', '0.99': 'p99', '0.999': 'p99.9', '0.9999': 'p99.99', '1': 'max' };
  const OUTCOMES = ['accepted', 'rejected', 'replayed'];

  // Series without labels: where each goes, its label and how to show it. `rate`:
  // also show its change per second, formatted so.
  const SINGLE = {
    bourse_command_queue_depth: ['queue-rows', 'Command queue (waiting for the sequencer)', 'count'],
    bourse_publisher_queue_depth: ['queue-rows', 'Publisher queue (applied batches waiting)', 'count'],
    bourse_webhook_pending: ['queue-rows', 'Webhook notifications pending', 'count'],
    bourse_journal_bytes_total: ['journal-rows', 'Bytes appended', 'bytes', 'bytes'],
    bourse_journal_syncs_total: ['journal-rows', 'Syncs', 'count', 'count'],
    bourse_journal_last_sync_seconds: ['journal-rows', 'Last sync took', 'seconds'],
    bourse_journal_durable_seq: ['journal-rows', 'Durable through seq', 'count'],
    bourse_runtime_commands_total: ['journal-rows', 'Commands sequenced', 'count', 'count'],
    bourse_runtime_batches_total: ['journal-rows', 'Batches journaled', 'count', 'count'],
    bourse_engine_apply_seconds_total: ['journal-rows', 'Engine busy applying (total; rate: share of time)', 'seconds', 'percent'],
    bourse_snapshots_total: ['snapshot-rows', 'Snapshots written', 'count'],
    bourse_snapshots_skipped_total: ['snapshot-rows', 'Snapshots given up', 'count'],
    bourse_snapshot_seq: ['snapshot-rows', 'Last snapshot at seq', 'count'],
    bourse_snapshot_age_seconds: ['snapshot-rows', 'Age of the last snapshot', 'age'],
    bourse_snapshot_pause_seconds_max: ['snapshot-rows', 'Longest engine pause for a snapshot', 'seconds'],
    bourse_slow_consumers_total: ['session-rows', 'Slow consumers disconnected', 'count'],
    bourse_pushes_total: ['session-rows', 'Pushes to sessions', 'count', 'count'],
    bourse_market_data_updates_total: ['session-rows', 'Market-data updates', 'count', 'count'],
    bourse_webhook_notifications_total: ['webhook-rows', 'Notifications queued', 'count', 'count'],
    bourse_webhook_journal_replays_total: ['webhook-rows', 'Derived again from the journal', 'count'],
  };
  const SUMMARIES = {
    bourse_pipeline_latency_seconds: 'Pipeline: sequencer → publisher',
    bourse_engine_command_seconds: 'Engine: apply per command',
    bourse_end_to_end_latency_seconds: 'End to end',
  };

  const $ = (id) => document.getElementById(id);
  const cells = new Map(); // series → element
  const rates = new Map(); // series → rate element
  const rows = new Map(); // table row key → <tr>
  const history = {
    throughput: { accepted: [], rejected: [] },
    latency: { 'pipeline p99': [], 'websocket p99': [], 'http p99': [] },
    queues: { command: [], publisher: [] },
  };
  let previous = null; // the last snapshot
  let socket = null;
  let reconnectMs = RECONNECT_MIN_MS;
  let lastMessageAt = 0;
  const stats = { snapshots: 0, connects: 0 };
  window.bourseDashboard = stats;

  // ---------------------------------------------------------------------------
  // Formatting.

  function significant(value) {
    return Number(value.toPrecision(3)).toString();
  }

  function format(value, how) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    switch (how) {
      case 'count':
        return Number.isInteger(value) ? value.toLocaleString('en-US') : significant(value);
      case 'seconds': {
        const magnitude = Math.abs(value);
        if (magnitude === 0) return '0';
        if (magnitude < 1e-6) return `${significant(value * 1e9)} ns`;
        if (magnitude < 1e-3) return `${significant(value * 1e6)} µs`;
        if (magnitude < 1) return `${significant(value * 1e3)} ms`;
        return `${significant(value)} s`;
      }
      case 'bytes': {
        const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
        let scaled = value;
        let unit = 0;
        while (Math.abs(scaled) >= 1024 && unit < units.length - 1) {
          scaled /= 1024;
          unit += 1;
        }
        return unit === 0 ? `${Math.round(scaled)} B` : `${significant(scaled)} ${units[unit]}`;
      }
      case 'age':
        if (value < 0) return 'none yet';
        if (value < 60) return `${value.toFixed(1)} s`;
        return `${Math.floor(value / 60)} min ${Math.floor(value % 60)} s`;
      case 'percent':
        return `${(value * 100).toFixed(1)} %`;
      default:
        return String(value);
    }
  }

  function formatRate(value, how) {
    if (value === null || value === undefined) return '–';
    if (how === 'bytes') return `${format(value, 'bytes')}/s`;
    if (how === 'percent') return format(value, 'percent');
    return `${value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US')}/s`;
  }

  // ---------------------------------------------------------------------------
  // Series names.

  function parseSeries(series) {
    const brace = series.indexOf('{');
    if (brace < 0) return { name: series, labels: {} };
    const labels = {};
    const pattern = /(\w+)="((?:[^"\\]|\\.)*)"/g;
    let match;
    while ((match = pattern.exec(series.slice(brace))) !== null) labels[match[1]] = match[2];
    return { name: series.slice(0, brace), labels };
  }

  function rateOf(series, snapshot) {
    if (!previous || !(series in previous.metrics)) return null;
    const seconds = (snapshot.time_ms - previous.time_ms) / 1000;
    const change = snapshot.metrics[series] - previous.metrics[series];
    if (seconds <= 0 || change < 0) return null; // a restarted server: counters began again
    return change / seconds;
  }

  // ---------------------------------------------------------------------------
  // Elements.

  function element(tag, attributes, text) {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) made.setAttribute(name, value);
    if (text !== undefined) made.textContent = text;
    return made;
  }

  function valueCell(series, how) {
    const cell = element('td', { class: 'num', 'data-metric': series, 'data-format': how, 'data-value': '' }, '–');
    cells.set(series, cell);
    return cell;
  }

  function rateCell(series, how) {
    const cell = element('td', { class: 'num rate', 'data-rate': series, 'data-format': how, 'data-value': '' }, '');
    rates.set(series, cell);
    return cell;
  }

  // A label/value row (and a rate cell when `rateHow` is given) in the tbody `into`.
  function kvRow(into, series, label, how, rateHow) {
    const row = element('tr', { 'data-series': series });
    row.append(element('th', {}, label), valueCell(series, how));
    row.append(rateHow ? rateCell(series, rateHow) : element('td'));
    $(into).append(row);
    return row;
  }

  // The row `key` of table `table`, made with `columns` empty cells after its label.
  function tableRow(table, key, label, columns) {
    const id = `${table}/${key}`;
    if (!rows.has(id)) {
      const row = element('tr', { 'data-row': key });
      row.append(element('th', {}, label));
      for (const column of columns) row.append(element('td', { class: 'num', 'data-column': column }));
      $(table).querySelector('tbody').append(row);
      rows.set(id, row);
    }
    return rows.get(id);
  }

  function placeInRow(row, column, series, how) {
    const slot = row.querySelector(`[data-column="${column}"]`);
    const cell = valueCell(series, how);
    cell.setAttribute('data-column', column);
    slot.replaceWith(cell);
  }

  // Makes the element for `series`, in its section.
  function place(series) {
    const { name, labels } = parseSeries(series);
    if (name in SINGLE && Object.keys(labels).length === 0) {
      const [into, label, how, rateHow] = SINGLE[name];
      kvRow(into, series, label, how, rateHow);
      return;
    }
    if (name === 'bourse_commands_total' && labels.kind && OUTCOMES.includes(labels.outcome)) {
      const row = tableRow('commands', labels.kind, labels.kind, [...OUTCOMES, 'rate']);
      placeInRow(row, labels.outcome, series, 'count');
      return;
    }
    if (name === 'bourse_rejections_total' && labels.reason) {
      kvRow('rejection-rows', series, labels.reason, 'count', 'count');
      return;
    }
    if (name === 'bourse_gateway_errors_total' && labels.code) {
      kvRow('gateway-error-rows', series, labels.code, 'count', 'count');
      $('gateway-errors-empty').hidden = true;
      return;
    }
    if ((name === 'bourse_sessions' || name === 'bourse_sessions_opened_total') && labels.transport) {
      const row = tableRow('session-table', labels.transport, labels.transport, ['open', 'opened']);
      placeInRow(row, name === 'bourse_sessions' ? 'open' : 'opened', series, 'count');
      return;
    }
    if (name === 'bourse_webhook_deliveries_total' && labels.outcome) {
      kvRow('webhook-rows', series, `Deliveries ${labels.outcome.replace('_', ' ')}`, 'count', 'count');
      return;
    }
    const summary = summaryPart(name, labels);
    if (summary) {
      const row = tableRow('latency-table', summary.row, summary.label, [...Object.values(QUANTILES), 'count', 'sum']);
      placeInRow(row, summary.column, series, summary.how);
      return;
    }
    $('other').hidden = false;
    kvRow('other-rows', series, series, 'count');
  }

  // Where a summary's sample goes: its row (the summary and transport) and column.
  function summaryPart(name, labels) {
    for (const [base, title] of Object.entries(SUMMARIES)) {
      if (!name.startsWith(base)) continue;
      const suffix = name.slice(base.length);
      const row = labels.transport ? `${base}/${labels.transport}` : base;
      const label = labels.transport ? `${title} (${labels.transport})` : title;
      if (suffix === '' && labels.quantile in QUANTILES) {
        return { row, label, column: QUANTILES[labels.quantile], how: 'seconds' };
      }
      if (suffix === '_count') return { row, label, column: 'count', how: 'count' };
      if (suffix === '_sum') return { row, label, column: 'sum', how: 'seconds' };
    }
    return null;
  }

  function show(target, value, text) {
    target.setAttribute('data-value', value === null || value === undefined ? '' : String(value));
    if (target.textContent !== text) target.textContent = text;
  }

  // ---------------------------------------------------------------------------
  // One snapshot.

  function apply(snapshot) {
    const metrics = snapshot.metrics;
    for (const series of Object.keys(metrics)) {
      if (!cells.has(series)) place(series);
      const cell = cells.get(series);
      show(cell, metrics[series], format(metrics[series], cell.getAttribute('data-format')));
    }
    for (const [series, cell] of rates) {
      const rate = rateOf(series, snapshot);
      show(cell, rate, formatRate(rate, cell.getAttribute('data-format')));
    }
    applyCommands(snapshot);
    applyIdle(metrics);
    applyMarkets(snapshot.markets);
    applyLatencyHistory(metrics);
    push(history.queues.command, metrics.bourse_command_queue_depth);
    push(history.queues.publisher, metrics.bourse_publisher_queue_depth);
    show($('last-seq'), snapshot.last_seq, format(snapshot.last_seq, 'count'));
    show($('snapshot-time'), snapshot.time_ms, new Date(snapshot.time_ms).toLocaleTimeString('en-GB'));
    show($('viewers'), snapshot.viewers, String(snapshot.viewers));
    draw();
  }

  // Rates by kind (all outcomes) and in all, by outcome.
  function applyCommands(snapshot) {
    const byOutcome = { accepted: null, rejected: null, replayed: null };
    for (const [id, row] of rows) {
      if (!id.startsWith('commands/')) continue;
      const kind = row.getAttribute('data-row');
      let kindRate = null;
      for (const outcome of OUTCOMES) {
        const rate = rateOf(`bourse_commands_total{kind="${kind}",outcome="${outcome}"}`, snapshot);
        if (rate === null) continue;
        kindRate = (kindRate || 0) + rate;
        byOutcome[outcome] = (byOutcome[outcome] || 0) + rate;
      }
      const cell = row.querySelector('[data-column="rate"]');
      cell.classList.add('rate');
      cell.setAttribute('data-rate', `bourse_commands_total{kind="${kind}"}`);
      show(cell, kindRate, formatRate(kindRate, 'count'));
    }
    let total = null;
    for (const outcome of OUTCOMES) {
      const rate = byOutcome[outcome];
      if (rate !== null) total = (total || 0) + rate;
      show($(`rate-${outcome}`), rate, formatRate(rate, 'count').replace('/s', ''));
    }
    show($('rate-commands'), total, formatRate(total, 'count').replace('/s', ''));
    push(history.throughput.accepted, byOutcome.accepted);
    push(history.throughput.rejected, byOutcome.rejected);
  }

  // Rows whose counters are all zero are idle (hidden unless "show idle rows").
  function applyIdle(metrics) {
    for (const row of document.querySelectorAll('#commands tbody tr, #rejection-rows tr, #gateway-error-rows tr')) {
      const values = [...row.querySelectorAll('[data-metric]')].map((cell) => metrics[cell.getAttribute('data-metric')]);
      row.classList.toggle('idle', values.every((value) => !value));
    }
  }

  function applyLatencyHistory(metrics) {
    push(history.latency['pipeline p99'], metrics['bourse_pipeline_latency_seconds{quantile="0.99"}']);
    push(history.latency['websocket p99'], metrics['bourse_end_to_end_latency_seconds{transport="websocket",quantile="0.99"}']);
    push(history.latency['http p99'], metrics['bourse_end_to_end_latency_seconds{transport="http",quantile="0.99"}']);
  }

  function applyMarkets(markets) {
    for (const market of markets || []) {
      const row = tableRow('market-table', market.market, market.market, ['bid_qty', 'bid', 'ask', 'ask_qty', 'spread', 'last', 'market_seq']);
      const bid = market.bid || [null, null];
      const ask = market.ask || [null, null];
      const spread = market.bid && market.ask ? decimalDifference(ask[0], bid[0]) : null;
      const values = {
        bid_qty: bid[1],
        bid: bid[0],
        ask: ask[0],
        ask_qty: ask[1],
        spread,
        last: market.last_trade ? market.last_trade.price : null,
        market_seq: market.market_seq,
      };
      for (const [field, value] of Object.entries(values)) {
        const cell = row.querySelector(`[data-column="${field}"]`);
        cell.setAttribute('data-market', market.market);
        cell.setAttribute('data-field', field);
        show(cell, value, value === null ? '–' : String(value));
      }
      row.classList.toggle('idle', market.market_seq === 0);
    }
  }

  // a − b for two decimal strings, with as many decimals as the longer has.
  function decimalDifference(a, b) {
    const decimals = Math.max((a.split('.')[1] || '').length, (b.split('.')[1] || '').length);
    return (Number(a) - Number(b)).toFixed(decimals);
  }

  // ---------------------------------------------------------------------------
  // Charts.

  function push(series, value) {
    series.push(value === undefined ? null : value);
    if (series.length > HISTORY_POINTS) series.shift();
  }

  const COLOURS = ['#4cc38a', '#f06a6a', '#5aa9f0', '#e6b84d'];

  function draw() {
    chart($('chart-throughput'), history.throughput, (value) => formatRate(value, 'count'));
    chart($('chart-latency'), history.latency, (value) => format(value, 'seconds'));
    chart($('chart-queues'), history.queues, (value) => format(value, 'count'));
  }

  // Lines for each named series in `data`, newest at the right, from 0 to the largest
  // value shown; the legend gives each series' newest value.
  function chart(canvas, data, label) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const context = canvas.getContext('2d');
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const top = 18;
    const bottom = height - 4;
    const left = 4;
    const right = width - 4;
    let max = 0;
    for (const values of Object.values(data)) for (const value of values) if (value > max) max = value;
    max = max > 0 ? max * 1.1 : 1;
    context.strokeStyle = '#2a3541';
    context.fillStyle = '#7d8a97';
    context.font = '11px system-ui, sans-serif';
    context.lineWidth = 1;
    for (const fraction of [0, 0.5, 1]) {
      const y = bottom - (bottom - top) * fraction;
      context.beginPath();
      context.moveTo(left, y);
      context.lineTo(right, y);
      context.stroke();
      if (fraction > 0) context.fillText(label(max * fraction), right - 70, y - 2);
    }
    const step = (right - left) / (HISTORY_POINTS - 1);
    let legendX = left;
    Object.entries(data).forEach(([name, values], index) => {
      context.strokeStyle = COLOURS[index % COLOURS.length];
      context.lineWidth = 1.5;
      context.beginPath();
      let drawing = false;
      values.forEach((value, at) => {
        if (value === null) {
          drawing = false;
          return;
        }
        const x = right - (values.length - 1 - at) * step;
        const y = bottom - (bottom - top) * (value / max);
        if (drawing) context.lineTo(x, y);
        else context.moveTo(x, y);
        drawing = true;
      });
      context.stroke();
      const newest = values.length ? values[values.length - 1] : null;
      const text = `${name}: ${newest === null ? '–' : label(newest)}`;
      context.fillStyle = COLOURS[index % COLOURS.length];
      context.fillText(text, legendX, 12);
      legendX += context.measureText(text).width + 16;
    });
  }

  // ---------------------------------------------------------------------------
  // The feed: connect, and connect again (backing off) whenever it drops.

  function setStatus(text, kind) {
    const status = $('status');
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = new WebSocket(`${scheme}//${location.host}/v1/dashboard/ws`);
    socket.onopen = () => {
      stats.connects += 1;
      lastMessageAt = Date.now();
      setStatus('connected', 'connecting');
    };
    socket.onmessage = (message) => {
      let snapshot;
      try {
        snapshot = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (snapshot.type !== 'dashboard') return;
      lastMessageAt = Date.now();
      reconnectMs = RECONNECT_MIN_MS;
      if (previous && snapshot.time_ms <= previous.time_ms) return;
      apply(snapshot);
      previous = snapshot;
      stats.snapshots += 1;
      setStatus('live', 'live');
    };
    socket.onclose = () => {
      socket = null;
      setStatus(`reconnecting in ${(reconnectMs / 1000).toFixed(1)} s`, 'reconnecting');
      setTimeout(connect, reconnectMs);
      reconnectMs = Math.min(reconnectMs * 2, RECONNECT_MAX_MS);
    };
    socket.onerror = () => {
      if (socket) socket.close();
    };
  }

  // A feed that went quiet (a half-open connection) is closed, which reconnects it.
  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastMessageAt > 5000) {
      setStatus('stale', 'stale');
      socket.close();
    }
  }, 1000);

  $('show-idle').addEventListener('change', (event) => {
    document.body.classList.toggle('show-idle', event.target.checked);
  });
  window.addEventListener('resize', draw);
  connect();
})();
