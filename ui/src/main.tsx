import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './styles.css';
import { FeedPage } from './pages/Feed';
import { MapPage } from './pages/Map';
import { Overview } from './pages/Overview';
import { ProcessPage } from './pages/Process';
import { Search } from './pages/Search';
import { TriagePage } from './pages/Triage';
import { TypePage } from './pages/Type';
import { connected, href, parseRoute, startLive } from './state';

const NAV: [string, string, string][] = [
  ['/', 'Overview', 'o'],
  ['/search', 'Search', 's'],
  ['/triage', 'Triage', 't'],
  ['/map', 'Map', 'm'],
  ['/feed', 'Live feed', 'f'],
];

function App() {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    startLive();
    // Keyboard: "/" focuses search; g then a letter goes to a page.
    let g = false;
    const key = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (t.closest('input, textarea, select')) return;
      if (e.key === '/') { e.preventDefault(); location.hash = href('/search'); setTimeout(() => document.getElementById('q')?.focus(), 0); return; }
      if (g) { const n = NAV.find((x) => x[2] === e.key); if (n) location.hash = href(n[0]); g = false; return; }
      g = e.key === 'g';
    };
    addEventListener('keydown', key);
    return () => { removeEventListener('hashchange', on); removeEventListener('keydown', key); };
  }, []);
  const [head, ...rest] = route.path;
  let page;
  switch (head) {
    case undefined: page = <Overview />; break;
    case 'search': page = <Search q={route.params.get('q') ?? ''} />; break;
    case 'process': page = <ProcessPage id={rest[0] ?? ''} />; break;
    case 'type': page = <TypePage name={rest[0] ?? ''} />; break;
    case 'map': page = <MapPage />; break;
    case 'triage': page = <TriagePage olderThan={route.params.get('older_than') ?? ''} />; break;
    case 'feed': page = <FeedPage />; break;
    default: page = <p>No page here. <a href="#/">Back to the overview</a>.</p>;
  }
  const current = `/${head ?? ''}`;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <header class="top">
        <a class="brand" href="#/">Threadline</a>
        <nav aria-label="Pages">
          {NAV.map(([path, label]) => (
            <a href={href(path)} aria-current={current === path || (path !== '/' && current.startsWith(path)) ? 'page' : undefined}>{label}</a>
          ))}
        </nav>
        <span class={`conn ${connected.value ? 'up' : 'down'}`} title="The live event stream" data-testid="connection">
          {connected.value ? '● live' : connected.value === false ? '○ server unreachable, retrying' : '○ connecting'}
        </span>
      </header>
      <main id="main" tabIndex={-1}>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
