//! The page's one stylesheet, inline (the CSP allows inline styles, nothing else):
//! readable type, a narrow column on a laptop, full width on a phone, and the direction
//! of every message visible at a glance (inbound blue on the left, outbound green on
//! the right).

/// The CSS.
pub const CSS: &str = r#"
:root { --ink: #1d232b; --muted: #5d6773; --line: #e3e7ec; --bg: #f6f7f9; --card: #fff;
  --in: #1f5fbf; --in-bg: #e8f0fc; --out: #1d7a46; --out-bg: #e6f5ec; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 16px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
a { color: var(--in); text-decoration: none; } a:hover { text-decoration: underline; }
header { background: #20262e; color: #fff; padding: .6rem 1rem; display: flex; gap: 1rem;
  align-items: center; flex-wrap: wrap; }
header a.home { color: #fff; font-weight: 600; }
header form.search { flex: 1; display: flex; min-width: 12rem; }
header .who { color: #c9d1db; font-size: .9rem; display: flex; gap: .5rem; align-items: center; }
input[type=search], input[type=text], input[type=password] { width: 100%; padding: .45rem .6rem;
  border: 1px solid #c6ccd4; border-radius: 6px; font: inherit; }
button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid #3b4652;
  background: #2f6fd6; color: #fff; cursor: pointer; }
header button.link { background: none; border: none; color: #c9d1db; padding: 0; text-decoration: underline; }
main { max-width: 52rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; word-break: break-word; }
h2 { font-size: 1.1rem; margin: 0 0 .3rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: .9rem 1rem; margin: 0 0 1rem; }
.meta { color: var(--muted); font-size: .9rem; }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.plain li { padding: .5rem 0; border-top: 1px solid var(--line); }
ul.plain li:first-child { border-top: none; }
.msg { border-left: 4px solid var(--line); padding: .4rem .7rem; margin: .5rem 0; border-radius: 4px; }
.msg.inbound { border-color: var(--in); background: var(--in-bg); margin-right: 2.5rem; }
.msg.outbound { border-color: var(--out); background: var(--out-bg); margin-left: 2.5rem; }
.dir { display: inline-block; font-size: .75rem; font-weight: 700; letter-spacing: .03em;
  text-transform: uppercase; padding: .05rem .45rem; border-radius: 99px; color: #fff; }
.dir.inbound { background: var(--in); } .dir.outbound { background: var(--out); }
.who-wrote { font-weight: 600; }
.owner { display: inline-block; font-size: .8rem; padding: .05rem .45rem; border-radius: 99px;
  background: #fff3cd; color: #6b5200; }
pre.body { white-space: pre-wrap; word-wrap: break-word; font: inherit; margin: .5rem 0 0; }
.snippet { margin: .2rem 0 0; color: #333; }
.error { color: #a11; }
form.login { max-width: 22rem; margin: 3rem auto; }
form.login label { display: block; margin: .7rem 0 .2rem; }
form.login button { margin-top: 1rem; width: 100%; }
@media (max-width: 600px) {
  main { padding: .6rem; }
  .msg.inbound { margin-right: .6rem; } .msg.outbound { margin-left: .6rem; }
}
"#;
