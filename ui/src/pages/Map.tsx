import { useEffect, useRef, useState } from 'preact/hooks';
import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';
import { api } from '../api';
import { elements } from '../graph';
import { Empty, ErrorBox, Loading, useData } from '../components';
import { href } from '../state';

cytoscape.use(dagre);

export function MapPage() {
  const [windowMinutes] = useState(15);
  const { data, error, loading, reload } = useData(() => api.graph(windowMinutes), [windowMinutes], 10_000);
  const ref = useRef<HTMLDivElement>(null);
  const cy = useRef<cytoscape.Core | null>(null);
  const signature = data ? JSON.stringify([data.calls.map((c) => [c.caller, c.callee]), data.channels.map((c) => c.destination), data.operations.map((o) => o.service)]) : '';
  useEffect(() => {
    if (!ref.current || !data) return;
    const dark = matchMedia('(prefers-color-scheme: dark)').matches;
    const text = dark ? '#e6e6e6' : '#1d2330';
    cy.current?.destroy();
    cy.current = cytoscape({
      container: ref.current,
      elements: elements(data),
      wheelSensitivity: 0.3,
      style: [
        { selector: 'node', style: { label: 'data(label)', 'text-wrap': 'wrap', 'font-size': 11, color: text, 'text-valign': 'center', 'text-halign': 'center', width: 190, height: 46, shape: 'round-rectangle', 'background-color': dark ? '#2a3142' : '#e8ecf7', 'border-width': 1, 'border-color': '#6b8afd' } },
        { selector: 'node.channel', style: { shape: 'barrel', 'background-color': dark ? '#3b3320' : '#fff4d6', 'border-color': '#d49b1b' } },
        { selector: 'node.group', style: { shape: 'ellipse', 'border-style': 'dashed' } },
        { selector: 'node.warn', style: { 'border-color': '#d49b1b', 'border-width': 2 } },
        { selector: 'node.bad', style: { 'border-color': '#d64545', 'border-width': 3 } },
        { selector: 'edge', style: { label: 'data(label)', 'font-size': 9, color: text, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', width: 1.5, 'line-color': '#8a94a8', 'target-arrow-color': '#8a94a8', 'text-background-color': dark ? '#151922' : '#ffffff', 'text-background-opacity': 0.8 } },
        { selector: 'edge.produce, edge.consume', style: { 'line-style': 'dashed', 'line-color': '#d49b1b', 'target-arrow-color': '#d49b1b' } },
        { selector: 'edge.bad', style: { 'line-color': '#d64545', 'target-arrow-color': '#d64545' } },
      ],
      layout: { name: 'dagre', rankDir: 'LR', nodeSep: 30, rankSep: 90 } as cytoscape.LayoutOptions,
    });
    cy.current.on('tap', 'node', (e) => {
      const d = e.target.data();
      if (d.kind === 'service') location.hash = href('/search', { q: `service:${d.name}` });
      else if (d.kind === 'channel') location.hash = href('/triage');
    });
    return () => { cy.current?.destroy(); cy.current = null; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [signature]);
  useEffect(() => {
    // Numbers change between layouts: update labels in place.
    if (!cy.current || !data) return;
    for (const el of elements(data)) cy.current.getElementById(el.data.id!).data('label', el.data.label);
  }, [data]);
  return (
    <section>
      <header class="page-head"><h1>System map</h1><span class="muted small">last {windowMinutes} minutes · click a service to search its processes</span></header>
      {error ? <ErrorBox error={error} retry={reload} /> : null}
      {loading && !data ? <Loading what="the system map" /> : null}
      {data && !data.operations.length && !data.channels.length ? <Empty><p>No spans in the last {windowMinutes} minutes, so no map yet.</p></Empty> : null}
      <div class="map" ref={ref} data-testid="map" role="img" aria-label="Services and channels with their rates, errors and latencies" />
      {data ? (
        <details>
          <summary>The map as a table</summary>
          <table class="grid">
            <thead><tr><th scope="col">From</th><th scope="col">To</th><th scope="col">Traffic</th></tr></thead>
            <tbody>{elements(data).filter((e) => e.data.source).map((e) => <tr><td>{e.data.source}</td><td>{e.data.target}</td><td>{e.data.label}</td></tr>)}</tbody>
          </table>
        </details>
      ) : null}
    </section>
  );
}
