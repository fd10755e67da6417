import { loadLocale, session, header } from './app.js';

await loadLocale();
header(await session());
