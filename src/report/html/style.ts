/** The report's stylesheet (inline: the page loads nothing). */
export const STYLE = `
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f8fafc; --card:#fff; --accent:#0072B2; --ok:#047857; --warn:#b45309; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font: 14px/1.5 "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 32px 48px; }
header.top { background: linear-gradient(120deg, #0b3b5c, #0072B2); color:#fff; }
header.top .inner { max-width:1160px; margin:0 auto; padding:26px 32px 22px; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:650; letter-spacing:.2px; }
header.top .meta { color:#dbeafe; font-size:13px; }
.badges { margin-top:12px; display:flex; flex-wrap:wrap; gap:8px; }
.badge { display:inline-block; padding:3px 10px; border-radius:999px; font-size:12px; font-weight:600; background:#e0f2fe; color:#075985; }
.badge.ok { background:#d1fae5; color:var(--ok); } .badge.warn { background:#fef3c7; color:var(--warn); } .badge.bad { background:#fee2e2; color:var(--bad); }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px; margin:18px 0; }
section h2 { margin:0 0 12px; font-size:18px; font-weight:650; }
section h3 { margin:18px 0 8px; font-size:15px; font-weight:650; }
p.note { color:var(--muted); font-size:13px; margin:6px 0 0; }
.kpis { display:grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap:12px; margin-top:-4px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.kpi .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.4px; }
.kpi .value { font-size:24px; font-weight:650; font-variant-numeric: tabular-nums; margin-top:2px; }
.kpi .sub { color:var(--muted); font-size:12px; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap:6px 18px; margin:0; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; overflow-wrap:anywhere; }
.table-wrap { overflow-x:auto; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:#f1f5f9; font-weight:600; color:#334155; white-space:nowrap; }
tbody tr:nth-child(even) td { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12px; overflow-wrap:anywhere; }
tr.flagged td { background:#fff7ed !important; }
.pill { padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; white-space:nowrap; }
.pill.ok { background:#d1fae5; color:var(--ok); } .pill.warn { background:#fef3c7; color:var(--warn); } .pill.bad { background:#fee2e2; color:var(--bad); } .pill.na { background:#f3f4f6; color:var(--muted); }
.charts { display:grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap:18px; }
figure { margin:0; }
figure .chart-box { position:relative; height:300px; }
figcaption { font-weight:600; font-size:14px; margin-bottom:8px; }
.callout { border-left:4px solid var(--warn); background:#fffbeb; padding:10px 14px; border-radius:6px; margin:10px 0; }
.callout.bad { border-color:var(--bad); background:#fef2f2; }
.callout.ok { border-color:var(--ok); background:#ecfdf5; }
footer { color:var(--muted); font-size:12px; text-align:center; margin-top:24px; }
.model-card h3:first-child { margin-top:0; }
@media print { body { background:#fff; } section, .kpi { break-inside: avoid; } header.top { print-color-adjust: exact; -webkit-print-color-adjust: exact; } }
`;
