import cf from 'cloudfront';
import crypto from 'crypto';
// leaktrace A/B selector, cloudfront-js-2.0 viewer-request; generated from src/function.js by build.mjs
const kvs=cf.kvs();
const SEG=/^[A-Za-z0-9._~-]+$/;
const SERVED=/\.(m3u8|mpd|m4s|mp4|m4v|cmfv|m4a|cmfa|vtt|ts|aac)$/;
const TEXT={400:'Bad Request',403:'Forbidden',404:'Not Found',405:'Method Not Allowed',500:'Internal Server Error'};
function refuse(code){
const h={
'content-type':{value:'text/plain; charset=utf-8'},
'cache-control':{value:'no-store'},
'vary':{value:'Authorization'},
'x-content-type-options':{value:'nosniff'},
'access-control-allow-origin':{value:'*'},
};
if(code===405)h.allow={value:'GET, HEAD, OPTIONS'};
const t=TEXT[code];
return{statusCode:code,statusDescription:t,headers:h,body:{encoding:'text',data:(code===500?'internal error':t.toLowerCase())+'\n'}};
}
function parsePath(p){
if(p.length>17408||p[0]!=='/')return 400;
let s=p.slice(1).split('/');
for(let i=0;i<s.length;i++)if(!SEG.test(s[i])||s[i][0]==='.')return 400;
let t;
if(s[0]==='wmt'){
if(s.length===1)return 404;
t=s[1];
s=s.slice(2);
}
let o;
if(s.length===2&&/\.(m3u8|mpd)$/.test(s[1]))o={t:t,title:s[0],file:s[1]};
else if(s.length===3){
if(['a','b','wmpaceinfo','reference'].indexOf(s[1].toLowerCase())>=0||!SERVED.test(s[2]))return 404;
o={t:t,title:s[0],r:s[1],file:s[2]};
}else return 404;
return o.title.length>128?400:o;
}
function cbor(b){
let p=0;
const item=(d)=>{
if(d>16||p>=b.length)throw'cbor';
const ib=b[p++];
const mj=ib>>5;
const ai=ib&31;
let a=ai;
if(ai>23){
if(ai>27)throw'cbor';
const n=1<<(ai-24);
if(b.length-p<n)throw'cbor';
a=0;
for(let i=0;i<n;i++)a=a*256+b[p++];
if(a<[24,256,65536,4294967296][ai-24])throw'cbor';
}
if(mj===0)return a;
if(mj===1)return-1-a;
if(mj===6)return{T:a,v:item(d+1)};
if(mj===7){
if(ai<20||ai>23)throw'cbor';
return[false,true,null,undefined][ai-20];
}
if(a>b.length-p)throw'cbor';
if(mj<4){
const s=b.subarray(p,p+a);
p+=a;
return mj===2?s:utf8(s);
}
const o=[];
let ks=-1;
let ke=0;
for(let i=0;i<a;i++){
if(mj===4){
o.push(item(d+1));
continue;
}
const s=p;
const k=item(d+1);
if(ks>=0&&order(b,ks,ke,s,p)>=0)throw'cbor';
ks=s;
ke=p;
o.push([k,item(d+1)]);
}
return mj===4?o:{M:o};
};
const v=item(0);
if(p!==b.length)throw'cbor';
return v;
}
function order(b,s1,e1,s2,e2){
for(;s1<e1&&s2<e2;s1++,s2++)if(b[s1]!==b[s2])return b[s1]-b[s2];
return(e1-s1)-(e2-s2);
}
function utf8(s){
let t='';
for(let i=0;i<s.length;i++)t+=(s[i]<16?'%0':'%')+s[i].toString(16);
try{
return decodeURIComponent(t);
}catch(e){
throw'utf8';
}
}
const isBytes=(x)=>x!==null&&typeof x==='object'&&x.BYTES_PER_ELEMENT===1;
const isUint=(x)=>typeof x==='number'&&x>=0;
const isSid=(s)=>typeof s==='string'&&s.length<=128&&SEG.test(s);
function mapGet(m,k){
for(let i=0;i<m.M.length;i++)if(m.M[i][0]===k)return m.M[i][1];
}
function bhead(n){
if(n<24)return Buffer.from([64+n]);
if(n<256)return Buffer.from([88,n]);
if(n<65536)return Buffer.from([89,n>>8,n&255]);
return Buffer.from([90,n>>>24,(n>>16)&255,(n>>8)&255,n&255]);
}
function verify(tok,keys,now){
if(!tok||tok.length>16384)throw'no token';
const raw=Buffer.from(tok,'base64url');
if(raw.toString('base64url')!==tok)throw'base64url';
const o=cbor(raw);
if(!o||o.T!==61||!o.v||o.v.T!==17)throw'tag';
const x=o.v.v;
if(!Array.isArray(x)||x.length!==4)throw'cose';
const ph=x[0];
const pl=x[2];
const tag=x[3];
if(!isBytes(ph)||!x[1]||!x[1].M||x[1].M.length||!isBytes(pl)||!isBytes(tag))throw'cose';
const h=ph.length?cbor(ph):{M:[]};
if(!h.M||mapGet(h,2)!==undefined||mapGet(h,1)!==5)throw'alg';
const tbs=Buffer.concat([Buffer.from([132,100,77,65,67,48]),bhead(ph.length),ph,Buffer.from([64]),bhead(pl.length),pl]);
let by;
for(const v in keys){
const mac=crypto.createHmac('sha256',Buffer.from(keys[v].slice(0,64),'hex')).update(tbs).digest();
let d=tag.length^32;
for(let i=0;i<32;i++)d|=mac[i]^tag[i];
if(!d)by=Number(v);
}
if(by===undefined)throw'mac';
const c=claims(pl,now);
c.by=by;
return c;
}
function claims(pl,now){
const m=cbor(pl);
if(!m||!m.M||m.M.length>64)throw'claims';
const c={};
const names={1:'iss',4:'exp',5:'nbf',6:'iat',7:'cti',300:'wmver',301:'wmvnd',302:'wmpatlen',303:'wmsegduration',304:'wmpattern',305:'wmid',306:'wmopid',307:'wmkeyver'};
for(let i=0;i<m.M.length;i++){
const k=m.M[i][0];
const v=m.M[i][1];
const n=typeof k==='number'?names[k]:undefined;
if(!n)continue;
const ok=k===1||k===305?typeof v==='string'
:k===7||k===304?isBytes(v)
:k===303?Array.isArray(v)&&v.length===2&&isUint(v[0])&&isUint(v[1])&&v[0]>0&&v[1]>0
:isUint(v);
if(!ok)throw'claim '+n;
c[n]=v;
}
if(c.exp===undefined||c.iat===undefined||c.wmver!==1||c.wmvnd===undefined)throw'claims';
if(!(c.wmpatlen>=1&&c.wmpatlen<=65535))throw'wmpatlen';
if((c.wmpattern===undefined)===(c.wmid===undefined))throw'mode';
if(c.wmpattern!==undefined){
if(c.wmpattern.length!==Math.ceil(c.wmpatlen/8))throw'wmpattern';
}else if(!isSid(c.wmid)||c.wmopid===undefined)throw'wmid';
if(c.exp+60<=now)throw'expired';
if(c.iat>now+60||(c.nbf!==undefined&&c.nbf>now+60))throw'not yet valid';
return c;
}
const IV=[0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19];
const PERM=[2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8];
let st;
function g(a,b,c,d,x,y){
let A=st[a];
let B=st[b];
let C=st[c];
let D=st[d];
A=(A+B+x)|0;
D^=A;
D=(D>>>16)|(D<<16);
C=(C+D)|0;
B^=C;
B=(B>>>12)|(B<<20);
A=(A+B+y)|0;
D^=A;
D=(D>>>8)|(D<<24);
C=(C+D)|0;
B^=C;
B=(B>>>7)|(B<<25);
st[a]=A;
st[b]=B;
st[c]=C;
st[d]=D;
}
function compress(cv,m,ctr,len,flags){
st=[cv[0],cv[1],cv[2],cv[3],cv[4],cv[5],cv[6],cv[7],IV[0],IV[1],IV[2],IV[3],ctr,0,len,flags];
for(let r=0;r<7;r++){
g(0,4,8,12,m[0],m[1]);
g(1,5,9,13,m[2],m[3]);
g(2,6,10,14,m[4],m[5]);
g(3,7,11,15,m[6],m[7]);
g(0,5,10,15,m[8],m[9]);
g(1,6,11,12,m[10],m[11]);
g(2,7,8,13,m[12],m[13]);
g(3,4,9,14,m[14],m[15]);
const q=m;
m=PERM.map((i)=>q[i]);
}
for(let i=0;i<8;i++){
st[i]^=st[i+8];
st[i+8]^=cv[i];
}
return st;
}
function words(b,o,n){
const w=[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0];
for(let i=0;i<n;i++)w[i>>2]|=b[o+i]<<(8*(i&3));
return w;
}
function root(k,input){
const nb=Math.max(1,Math.ceil(input.length/64));
let cv=k;
for(let i=0;i<nb-1;i++)cv=compress(cv,words(input,64*i,64),0,64,i?16:17).slice(0,8);
const last=input.length-64*(nb-1);
return[cv,words(input,64*(nb-1),last),last,nb===1?27:26];
}
const block=(r,i)=>compress(r[0],r[1],i,r[2],r[3]);
const forTitle=(k,title)=>block(root(k,Buffer.from('title\0'+title)),0).slice(0,8);
const keyWords=(hex)=>words(Buffer.from(hex,'hex'),0,32).slice(0,8);
const LO=Math.asin(Math.sqrt(0.1));
function threshold(keyHex,title,position){
const pb=Buffer.from([position&255,(position>>>8)&255,(position>>>16)&255,position>>>24,0,0,0,0]);
const w=block(root(forTitle(keyWords(keyHex.slice(64,128)),title),pb),0);
const unit=((w[1]>>>0)*2097152+(w[0]>>>11))/9007199254740992;
const s=Math.sin(LO+unit*(Math.PI/2-2*LO));
return Math.min(65535,Math.max(1,Math.round(s*s*65536)))||1;
}
function word(keyHex,title,sid,position){
const at=2*position;
const o=block(root(forTitle(keyWords(keyHex.slice(128)),title),Buffer.from(sid)),Math.floor(at/64));
return(o[(at%64)>>2]>>>(8*(at&3)))&0xffff;
}
function position(file){
const m=/^seg_([0-9]{5,10})\.m4s$/.exec(file);
return m&&Number(m[1])<=4294967295?Number(m[1]):-1;
}
function sessionOf(c){
if(c.wmid!==undefined)return c.wmid;
try{
const s=c.cti&&utf8(c.cti);
return isSid(s)?s:null;
}catch(e){
return null;
}
}
async function handler(event){
const req=event.request;
const method=req.method;
if(method==='OPTIONS'){
return{
statusCode:204,
statusDescription:'No Content',
headers:{
'access-control-allow-origin':{value:'*'},
'access-control-allow-methods':{value:'GET, HEAD, OPTIONS'},
'access-control-allow-headers':{value:'Authorization, Range, If-None-Match, If-Range'},
'access-control-max-age':{value:'86400'},
},
};
}
if(method!=='GET'&&method!=='HEAD')return refuse(405);
const t=parsePath(req.uri);
if(typeof t==='number')return refuse(t);
let tok=t.t;
const q=req.querystring.wmt;
if(tok===undefined&&q&&SEG.test(q.value))tok=q.value;
const auth=req.headers.authorization;
if(tok===undefined&&auth){
const a=/^bearer +(\S+)\s*$/i.exec(auth.value);
if(a)tok=a[1];
}
let cfg;
try{
cfg=await kvs.get('leaktrace:config');
cfg=JSON.parse(cfg);
if(!isUint(cfg.wmopid)||!cfg.keys)throw 0;
}catch(e){
console.log('leaktrace:config unreadable');
return refuse(500);
}
let c;
let sid;
let tkv;
try{
c=verify(tok,cfg.keys,Math.floor(Date.now()/1000));
const held=(v)=>v===c.by;
if(c.wmid!==undefined&&(c.wmopid!==cfg.wmopid||(c.wmkeyver!==undefined&&!held(c.wmkeyver))))throw'operator or key version';
sid=sessionOf(c);
if(!sid)throw'no session';
const revoked=await kvs.exists(sid);
if(revoked)throw'revoked';
let rec=null;
try{
rec=await kvs.get('s:'+sid);
}catch(e){
throw'unknown session';
}
rec=/^([0-9]{1,10}) ([0-9]{1,10}) ([A-Za-z0-9._~-]{1,128})$/.exec(rec);
if(!rec)throw'unknown session';
if(rec[3]!==t.title)throw'other title';
if(!held(Number(rec[1])))throw'key version';
tkv=rec[2];
if(!cfg.keys[tkv])throw'title key version';
}catch(e){
console.log('refused: '+e);
return refuse(403);
}
let uri='/'+t.title+'/';
if(t.r!==undefined){
uri+=t.r+'/';
const p=position(t.file);
if(p>=0){
let v;
if(c.wmpattern){
const i=p%c.wmpatlen;
v=(c.wmpattern[i>>3]>>(7-(i&7)))&1?'b':'a';
}else v=word(cfg.keys[tkv],t.title,sid,p)<threshold(cfg.keys[tkv],t.title,p)?'b':'a';
uri+=v+'/';
}
}
req.uri=uri+t.file;
req.querystring={};
delete req.headers.authorization;
return req;
}
