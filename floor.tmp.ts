import Fastify from 'fastify';
const app = Fastify();
app.post('/v1/score', async (req) => ({ ok: true, n: JSON.stringify(req.body).length }));
await app.listen({ port: 18491, host: '127.0.0.1' });
console.log('up');
