/**
 * axios with Node's http and https. Import this module with `await import()` where the first
 * HTTP request is made: a command or pointer source that makes none (version, env, firewall,
 * a payload inline in user data) never evaluates them. Together they are a good part of the
 * bundle (axios, follow-redirects, proxy-from-env, Node's http/https/tls); docs/daemon.md
 * "Start-up" has the figures. (Static imports here: a dynamic `import('node:http')` would stay
 * an ES module import in the CommonJS bundle, which vm.Script cannot run.)
 */
import axios from 'axios';
import http from 'node:http';
import https from 'node:https';

export interface HttpStack {
  axios: typeof axios;
  http: typeof http;
  https: typeof https;
}

export const httpStack: HttpStack = { axios, http, https };
