/** The console's one stylesheet, served by the console itself (the CSP allows no other source). */
export const CONSOLE_CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2329; background: #f6f7f9; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1.2em; background: #1d2329; color: #fff; }
header nav a { color: #cfe3ff; margin-right: 1em; text-decoration: none; }
header nav a[aria-current] { color: #fff; border-bottom: 2px solid #fff; }
.badge { background: #b35c00; padding: 0 .5em; border-radius: 3px; }
main { padding: 1em 1.2em; }
h1 { font-size: 1.4em; margin: .2em 0 .6em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 4px; padding: .2em 1em 1em; margin-bottom: 1em; }
table { border-collapse: collapse; background: #fff; }
th, td { border-bottom: 1px solid #e3e6ea; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.entries td { max-width: 28em; overflow-wrap: anywhere; }
.fields th { font-weight: normal; color: #555; }
.none { color: #888; }
.notice { background: #fff7e0; border: 1px solid #f0d48a; padding: .5em .8em; }
.error { color: #a00; }
.hidden-char { font-size: .75em; color: #a00; border: 1px solid #e0a0a0; padding: 0 .15em; margin: 0 .1em; }
.filters label { margin-right: .8em; display: inline-block; }
.tabs a[aria-current] { font-weight: bold; }
.chart { width: 100%; max-width: 960px; height: auto; background: #fff; }
.chart text { font-size: 11px; fill: #555; }
.chart .axis { stroke: #999; }
.legend .key { display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 .8em; }
.o-delivered { fill: #2e8540; background: #2e8540; }
.o-stored { fill: #3a7bd5; background: #3a7bd5; }
.o-duplicate { fill: #9aa5b1; background: #9aa5b1; }
.o-stale { fill: #c9a227; background: #c9a227; }
.o-rejected { fill: #d9822b; background: #d9822b; }
.o-failed { fill: #c0392b; background: #c0392b; }
span.outcome { color: #fff; padding: 0 .4em; border-radius: 3px; }
`;
