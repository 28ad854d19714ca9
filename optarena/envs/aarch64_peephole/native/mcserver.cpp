//===- mcserver.cpp - llvm-mc and llvm-mca in one long-lived process ------===//
//
// optarena's AArch64 peephole environment assembles blocks with
//   llvm-mc -triple=T -filetype=obj -o -
// and scores them with
//   llvm-mca -mtriple=T -mcpu=CPU -iterations=N --instruction-info=false
//            --resource-pressure=false
// Each of those processes spends almost all of its time loading libLLVM. This
// server links libLLVM (LLVM 14) once and does what the two tools do, request
// after request: the same setup, the same parser, the same object streamer, the
// same llvm-mca pipeline (mca::Context::createDefaultPipeline with llvm-mca's
// default options, the target's InstrPostProcess and CustomBehaviour), the
// same code regions. Every request gets fresh LLVM objects (source manager,
// context, streamer, parser, pipeline); only the target lookups are kept.
//
// Usage: mcserver TRIPLE. Protocol (integers little-endian, strings are a u32
// length and that many bytes, so any text, NULs included, is safe):
//   request  u8 'a', string text                       assemble like llvm-mc
//            u8 'c', u32 iterations, string mcpu, string text
//                                                      score like llvm-mca
//   reply    u8 status, i64 value, string data, string diagnostics
// status 0: the tool would exit with 0; 1: it would exit with 1; 2: LLVM hit a
// fatal error (the server exits after this reply). value: llvm-mca's Total
// Cycles of the first region it reports (-1 when it reports none). data: the
// contents of the object's .text section (assemble). diagnostics: exactly what
// the tool would write to its standard error. The first reply, sent before any
// request, is the hello: status 0 and the LLVM version as data, or status 1
// and the target lookup's error (the server then exits).
//
// LLVM writes its diagnostics to file descriptor 2; the server points that at
// a scratch file emptied before each request and read after it. The protocol
// runs on private copies of descriptors 0 and 1, which become /dev/null, so
// nothing an input does (.print, .include "/dev/stdin") can reach it.
//
//===----------------------------------------------------------------------===//

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/BinaryFormat/ELF.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/MC/MCAsmBackend.h"
#include "llvm/MC/MCAsmInfo.h"
#include "llvm/MC/MCCodeEmitter.h"
#include "llvm/MC/MCContext.h"
#include "llvm/MC/MCInstPrinter.h"
#include "llvm/MC/MCInstrAnalysis.h"
#include "llvm/MC/MCInstrInfo.h"
#include "llvm/MC/MCObjectFileInfo.h"
#include "llvm/MC/MCObjectWriter.h"
#include "llvm/MC/MCParser/MCAsmLexer.h"
#include "llvm/MC/MCParser/MCAsmParser.h"
#include "llvm/MC/MCParser/MCTargetAsmParser.h"
#include "llvm/MC/MCRegisterInfo.h"
#include "llvm/MC/MCStreamer.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/MCTargetOptions.h"
#include "llvm/MC/MCTargetOptionsCommandFlags.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/MCA/Context.h"
#include "llvm/MCA/CustomBehaviour.h"
#include "llvm/MCA/HWEventListener.h"
#include "llvm/MCA/InstrBuilder.h"
#include "llvm/MCA/Pipeline.h"
#include "llvm/MCA/SourceMgr.h"
#include "llvm/MCA/Support.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormattedStream.h"
#include "llvm/Support/Host.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace llvm;

// The tools' MC options come from these command-line flags (at their defaults).
static mc::RegisterMCTargetOptionsFlags MOF;

namespace {

enum Status : uint8_t { Ok = 0, Failed = 1, Fatal = 2 };

int ProtocolIn = -1;
int ProtocolOut = -1;

// ------------------------------------------------------------------ protocol

bool readExactly(void *Buffer, size_t Size) {
  auto *Out = static_cast<char *>(Buffer);
  while (Size > 0) {
    ssize_t Got = ::read(ProtocolIn, Out, Size);
    if (Got < 0 && errno == EINTR)
      continue;
    if (Got <= 0)
      return false;
    Out += Got;
    Size -= static_cast<size_t>(Got);
  }
  return true;
}

void writeExactly(const std::string &Bytes) {
  const char *Data = Bytes.data();
  size_t Size = Bytes.size();
  while (Size > 0) {
    ssize_t Put = ::write(ProtocolOut, Data, Size);
    if (Put < 0 && errno == EINTR)
      continue;
    if (Put <= 0)
      _exit(3); // the client is gone
    Data += Put;
    Size -= static_cast<size_t>(Put);
  }
}

bool readU32(uint32_t &Value) {
  unsigned char Bytes[4];
  if (!readExactly(Bytes, 4))
    return false;
  Value = uint32_t(Bytes[0]) | uint32_t(Bytes[1]) << 8 | uint32_t(Bytes[2]) << 16 |
          uint32_t(Bytes[3]) << 24;
  return true;
}

bool readString(std::string &Value) {
  uint32_t Size;
  if (!readU32(Size) || Size > (1u << 30))
    return false;
  Value.resize(Size);
  return readExactly(&Value[0], Size);
}

void appendInteger(std::string &Out, uint64_t Value, unsigned Bytes) {
  for (unsigned I = 0; I < Bytes; ++I)
    Out.push_back(static_cast<char>((Value >> (8 * I)) & 0xff));
}

void appendString(std::string &Out, StringRef Value) {
  appendInteger(Out, Value.size(), 4);
  Out.append(Value.data(), Value.size());
}

struct Reply {
  Status Code = Ok;
  int64_t Value = -1;
  std::string Data;
};

void send(const Reply &R, StringRef Diagnostics) {
  std::string Bytes;
  Bytes.push_back(static_cast<char>(R.Code));
  appendInteger(Bytes, static_cast<uint64_t>(R.Value), 8);
  appendString(Bytes, R.Data);
  appendString(Bytes, Diagnostics);
  writeExactly(Bytes);
}

// ------------------------------------------------------------------ stderr

/// Empty the scratch file behind descriptor 2 (where errs() writes).
void clearDiagnostics() {
  errs().flush();
  if (::ftruncate(2, 0) != 0 || ::lseek(2, 0, SEEK_SET) != 0)
    report_fatal_error("cannot reset the diagnostics file");
}

/// What was written to descriptor 2 since clearDiagnostics().
std::string takeDiagnostics() {
  errs().flush();
  struct stat Info;
  std::string Text;
  if (::fstat(2, &Info) != 0)
    return Text;
  Text.resize(static_cast<size_t>(Info.st_size));
  size_t Done = 0;
  while (Done < Text.size()) {
    ssize_t Got = ::pread(2, &Text[Done], Text.size() - Done, static_cast<off_t>(Done));
    if (Got < 0 && errno == EINTR)
      continue;
    if (Got <= 0)
      break;
    Done += static_cast<size_t>(Got);
  }
  Text.resize(Done);
  return Text;
}

/// A fatal LLVM error (report_fatal_error): answer the request with it, as the
/// tool would have printed it, and exit; the client restarts the server.
void onFatalError(void *, const char *Reason, bool) {
  std::string Diagnostics = takeDiagnostics();
  Diagnostics += "LLVM ERROR: ";
  Diagnostics += Reason;
  Diagnostics += "\n";
  Reply R;
  R.Code = Fatal;
  send(R, Diagnostics);
  _exit(70);
}

std::unique_ptr<MemoryBuffer> stdinBuffer(StringRef Text) {
  // What MemoryBuffer::getFileOrSTDIN("-") gives the tools: the bytes, named
  // "<stdin>" (the name every diagnostic starts with).
  return MemoryBuffer::getMemBufferCopy(Text, "<stdin>");
}

// ------------------------------------------------------------------ llvm-mc

/// llvm-mc -triple=TRIPLE -filetype=obj -o -: assemble, then take the .text
/// section out of the object.
class Assembler {
  const Target &TheTarget;
  std::string TripleName; // normalized, as llvm-mc's GetTarget leaves it

public:
  Assembler(const Target &T, std::string Normalized)
      : TheTarget(T), TripleName(std::move(Normalized)) {}

  Reply run(StringRef Text) const {
    Reply R;
    Triple TheTriple(TripleName);
    const MCTargetOptions MCOptions = mc::InitMCTargetOptionsFromFlags();

    SourceMgr SrcMgr;
    SrcMgr.AddNewSourceBuffer(stdinBuffer(Text), SMLoc());

    std::unique_ptr<MCRegisterInfo> MRI(TheTarget.createMCRegInfo(TripleName));
    std::unique_ptr<MCAsmInfo> MAI(
        TheTarget.createMCAsmInfo(*MRI, TripleName, MCOptions));
    // llvm-mc's defaults: -relax-relocations, no debug section compression,
    // no -preserve-comments.
    MAI->setRelaxELFRelocations(true);
    MAI->setCompressDebugSections(DebugCompressionType::None);
    MAI->setPreserveAsmComments(false);

    // No -mcpu, no -mattr.
    std::unique_ptr<MCSubtargetInfo> STI(
        TheTarget.createMCSubtargetInfo(TripleName, "", ""));

    MCContext Ctx(TheTriple, MAI.get(), MRI.get(), STI.get(), &SrcMgr,
                  &MCOptions);
    std::unique_ptr<MCObjectFileInfo> MOFI(TheTarget.createMCObjectFileInfo(
        Ctx, /*PIC=*/false, /*LargeCodeModel=*/false));
    Ctx.setObjectFileInfo(MOFI.get());
    Ctx.setGenDwarfForAssembly(false);
    Ctx.setDwarfVersion(MCOptions.DwarfVersion ? MCOptions.DwarfVersion : 4);
    Ctx.setDwarfFormat(MCOptions.Dwarf64 ? dwarf::DWARF64 : dwarf::DWARF32);
    SmallString<128> CWD;
    if (!sys::fs::current_path(CWD))
      Ctx.setCompilationDir(CWD);
    // Object output: temporary labels go without names.
    Ctx.setUseNamesOnTempLabels(false);

    std::unique_ptr<MCInstrInfo> MCII(TheTarget.createMCInstrInfo());
    SmallVector<char, 0> Object;
    raw_svector_ostream OS(Object);
    MCCodeEmitter *CE = TheTarget.createMCCodeEmitter(*MCII, *MRI, Ctx);
    MCAsmBackend *MAB = TheTarget.createMCAsmBackend(*STI, *MRI, MCOptions);
    std::unique_ptr<MCStreamer> Str(TheTarget.createMCObjectStreamer(
        TheTriple, Ctx, std::unique_ptr<MCAsmBackend>(MAB),
        MAB->createObjectWriter(OS), std::unique_ptr<MCCodeEmitter>(CE), *STI,
        MCOptions.MCRelaxAll, MCOptions.MCIncrementalLinkerCompatible,
        /*DWARFMustBeAtTheEnd=*/false));
    Str->setUseAssemblerInfoForParsing(true);

    std::unique_ptr<MCAsmParser> Parser(
        createMCAsmParser(SrcMgr, Ctx, *Str, *MAI));
    std::unique_ptr<MCTargetAsmParser> TAP(
        TheTarget.createMCAsmParser(*STI, *Parser, *MCII, MCOptions));
    if (!TAP) {
      WithColor::error(errs(), "llvm-mc")
          << "this target does not support assembly parsing.\n";
      R.Code = Failed;
      return R;
    }
    Parser->setShowParsedOperands(false);
    Parser->setTargetParser(*TAP);
    Parser->getLexer().setLexMasmIntegers(false);
    Parser->getLexer().setLexMasmHexFloats(false);
    Parser->getLexer().setLexMotorolaIntegers(false);
    if (Parser->Run(/*NoInitialTextSection=*/false)) {
      R.Code = Failed;
      return R;
    }
    // The streamer has written the object when the parse finished.
    R.Data = textSection(StringRef(Object.data(), Object.size()));
    return R;
  }

private:
  /// The contents of the object's section named .text, the last one when
  /// there are several (as pyelftools' get_section_by_name, which the process
  /// backend uses, picks it); a SHT_NOBITS section reads as zeros. An object
  /// the process backend could not read either (not ELF, no .text) is a fatal
  /// error: the client then asks llvm-mc itself.
  static std::string textSection(StringRef Object) {
    Expected<std::unique_ptr<object::ObjectFile>> File =
        object::ObjectFile::createObjectFile(MemoryBufferRef(Object, "<object>"));
    if (!File) {
      consumeError(File.takeError());
      report_fatal_error("llvm-mc's object cannot be read back");
    }
    if (!isa<object::ELFObjectFileBase>(**File))
      report_fatal_error("llvm-mc's object is not ELF");
    bool Found = false;
    std::string Text;
    for (const object::SectionRef &Section : (*File)->sections()) {
      Expected<StringRef> Name = Section.getName();
      if (!Name) {
        consumeError(Name.takeError());
        continue;
      }
      if (*Name != ".text")
        continue;
      Found = true;
      if (object::ELFSectionRef(Section).getType() == ELF::SHT_NOBITS) {
        Text.assign(Section.getSize(), '\0');
        continue;
      }
      Expected<StringRef> Contents = Section.getContents();
      if (!Contents) {
        consumeError(Contents.takeError());
        report_fatal_error("llvm-mc's .text section cannot be read back");
      }
      Text = Contents->str();
    }
    if (!Found)
      report_fatal_error("llvm-mc's object has no .text section");
    return Text;
  }
};

// ------------------------------------------------------------------ llvm-mca

// llvm-mca's code regions (tools/llvm-mca/CodeRegion.{h,cpp} in LLVM 14): the
// input is one default region unless "# LLVM-MCA-BEGIN [name]" and
// "# LLVM-MCA-END [name]" comments delimit named ones; an instruction belongs
// to every region whose source range holds it.

class Region {
  StringRef Name;
  SMLoc Start;
  SMLoc End;
  SmallVector<MCInst, 16> Instructions;

public:
  Region(StringRef N, SMLoc S) : Name(N), Start(S) {}
  SMLoc start() const { return Start; }
  SMLoc end() const { return End; }
  void close(SMLoc Loc) { End = Loc; }
  bool holds(SMLoc Loc) const {
    if (End.isValid() && Loc.getPointer() > End.getPointer())
      return false;
    return !(Start.isValid() && Loc.getPointer() < Start.getPointer());
  }
  void add(const MCInst &Inst) { Instructions.push_back(Inst); }
  ArrayRef<MCInst> instructions() const { return Instructions; }
  bool empty() const { return Instructions.empty(); }
};

class Regions {
  SourceMgr &SM;
  std::vector<std::unique_ptr<Region>> All;
  StringMap<unsigned> Open; // name -> index in All
  bool Errors = false;

  /// Whether the default region (the whole input) is all there is.
  bool onlyDefault() const {
    return All.size() == 1 && !All[0]->start().isValid() &&
           !All[0]->end().isValid();
  }

public:
  explicit Regions(SourceMgr &S) : SM(S) {
    All.push_back(std::make_unique<Region>("", SMLoc()));
  }

  void begin(StringRef Name, SMLoc Loc) {
    if (Open.empty()) {
      if (onlyDefault()) { // the first marker replaces the default region
        Open[Name] = 0;
        All[0] = std::make_unique<Region>(Name, Loc);
        return;
      }
    } else {
      auto It = Open.find(Name);
      if (It != Open.end()) {
        const Region &Previous = *All[It->second];
        Errors = true;
        if (Name.empty()) {
          SM.PrintMessage(Loc, SourceMgr::DK_Error,
                          "found multiple overlapping anonymous regions");
          SM.PrintMessage(Previous.start(), SourceMgr::DK_Note,
                          "Previous anonymous region was defined here");
          return;
        }
        SM.PrintMessage(Loc, SourceMgr::DK_Error,
                        "overlapping regions cannot have the same name");
        SM.PrintMessage(Previous.start(), SourceMgr::DK_Note,
                        "region " + Name + " was previously defined here");
        return;
      }
    }
    Open[Name] = All.size();
    All.push_back(std::make_unique<Region>(Name, Loc));
  }

  void end(StringRef Name, SMLoc Loc) {
    if (Name.empty()) {
      if (Open.size() == 1) { // an unnamed end closes the only open region
        auto It = Open.begin();
        All[It->second]->close(Loc);
        Open.erase(It);
        return;
      }
      if (Open.empty() && onlyDefault()) {
        All[0]->close(Loc);
        return;
      }
    }
    auto It = Open.find(Name);
    if (It != Open.end()) {
      All[It->second]->close(Loc);
      Open.erase(It);
      return;
    }
    Errors = true;
    SM.PrintMessage(Loc, SourceMgr::DK_Error,
                    "found an invalid region end directive");
    if (Name.empty())
      SM.PrintMessage(Loc, SourceMgr::DK_Note,
                      "unable to find an active anonymous region");
    else
      SM.PrintMessage(Loc, SourceMgr::DK_Note,
                      "unable to find an active region named " + Name);
  }

  void add(const MCInst &Inst) {
    for (std::unique_ptr<Region> &R : All)
      if (R->holds(Inst.getLoc()))
        R->add(Inst);
  }

  bool valid() const { return !Errors; }
  bool empty() const {
    for (const std::unique_ptr<Region> &R : All)
      if (!R->empty())
        return false;
    return true;
  }
  const std::vector<std::unique_ptr<Region>> &all() const { return All; }
};

/// Reads the region markers out of comments (as llvm-mca's comment consumer):
/// "LLVM-MCA-END [name]" or "LLVM-MCA-BEGIN [name]" after spaces and tabs.
class MarkerReader : public AsmCommentConsumer {
  Regions &Found;

  static StringRef skipBlanks(StringRef Text) {
    size_t At = Text.find_first_not_of(" \t");
    return At < Text.size() ? Text.drop_front(At) : Text;
  }

public:
  explicit MarkerReader(Regions &R) : Found(R) {}

  void HandleComment(SMLoc Loc, StringRef Comment) override {
    if (Comment.empty())
      return;
    size_t At = Comment.find_first_not_of(" \t");
    if (At >= Comment.size())
      return;
    Comment = Comment.drop_front(At);
    if (Comment.consume_front("LLVM-MCA-END")) {
      Found.end(skipBlanks(Comment), Loc);
      return;
    }
    if (Comment.consume_front("LLVM-MCA-BEGIN"))
      Found.begin(skipBlanks(Comment), Loc);
  }
};

/// The streamer llvm-mca parses into: it keeps the instructions (by region)
/// and accepts every symbol directive without doing anything.
class RegionStreamer final : public MCStreamer {
  Regions &Found;

public:
  RegionStreamer(MCContext &Ctx, Regions &R) : MCStreamer(Ctx), Found(R) {}

  void emitInstruction(const MCInst &Inst, const MCSubtargetInfo &) override {
    Found.add(Inst);
  }
  bool emitSymbolAttribute(MCSymbol *, MCSymbolAttr) override { return true; }
  void emitCommonSymbol(MCSymbol *, uint64_t, unsigned) override {}
  void emitZerofill(MCSection *, MCSymbol *, uint64_t, unsigned,
                    SMLoc) override {}
  void emitGPRel32Value(const MCExpr *) override {}
  void BeginCOFFSymbolDef(const MCSymbol *) override {}
  void EmitCOFFSymbolStorageClass(int) override {}
  void EmitCOFFSymbolType(int) override {}
  void EndCOFFSymbolDef() override {}
};

/// Counts the simulated cycles as llvm-mca's summary view does (its "Total
/// Cycles": one per cycle-end event).
class CycleCounter : public mca::HWEventListener {
public:
  uint64_t Cycles = 0;
  void onCycleEnd() override { ++Cycles; }
};

/// llvm-mca -mtriple=TRIPLE -mcpu=CPU -iterations=N with the default pipeline
/// options; the views it prints do not change the simulation, so only the
/// cycle count of the summary view is kept.
class Scorer {
  const Target &TheTarget;
  std::string TripleName; // as given: llvm-mca does not normalize it

public:
  Scorer(const Target &T, std::string Name)
      : TheTarget(T), TripleName(std::move(Name)) {}

  Reply run(StringRef Text, StringRef CPU, unsigned Iterations) const {
    Reply R;
    R.Code = Failed;
    Triple TheTriple(TripleName);
    std::string MCPU = CPU == "native" ? sys::getHostCPUName().str() : CPU.str();

    std::unique_ptr<MCSubtargetInfo> STI(
        TheTarget.createMCSubtargetInfo(TripleName, MCPU, ""));
    if (!STI->isCPUStringValid(MCPU))
      return R;
    if (!STI->getSchedModel().hasInstrSchedModel()) {
      WithColor::error()
          << "unable to find instruction-level scheduling information for"
          << " target triple '" << TheTriple.normalize() << "' and cpu '"
          << MCPU << "'.\n";
      if (STI->getSchedModel().InstrItineraries)
        WithColor::note()
            << "cpu '" << MCPU << "' provides itineraries. However, "
            << "instruction itineraries are currently unsupported.\n";
      return R;
    }

    std::unique_ptr<MCRegisterInfo> MRI(TheTarget.createMCRegInfo(TripleName));
    const MCTargetOptions MCOptions = mc::InitMCTargetOptionsFromFlags();
    std::unique_ptr<MCAsmInfo> MAI(
        TheTarget.createMCAsmInfo(*MRI, TripleName, MCOptions));

    SourceMgr SrcMgr;
    SrcMgr.AddNewSourceBuffer(stdinBuffer(Text), SMLoc());
    MCContext Ctx(TheTriple, MAI.get(), MRI.get(), STI.get(), &SrcMgr);
    std::unique_ptr<MCObjectFileInfo> MOFI(
        TheTarget.createMCObjectFileInfo(Ctx, /*PIC=*/false));
    Ctx.setObjectFileInfo(MOFI.get());

    std::unique_ptr<MCInstrInfo> MCII(TheTarget.createMCInstrInfo());
    std::unique_ptr<MCInstrAnalysis> MCIA(
        TheTarget.createMCInstrAnalysis(MCII.get()));

    Regions Found(SrcMgr);
    unsigned Dialect = 0;
    {
      // The printer llvm-mca hands to the target streamer (some directives
      // need one), with output variant 0.
      std::unique_ptr<MCInstPrinter> ParsePrinter(TheTarget.createMCInstPrinter(
          Triple(TripleName), 0, *MAI, *MCII, *MRI));
      if (!ParsePrinter) {
        WithColor::error()
            << "unable to create instruction printer for target triple '"
            << TheTriple.normalize() << "' with assembly variant 0.\n";
        return R;
      }
      if (!parse(Found, SrcMgr, Ctx, *MAI, *STI, *MCII, *ParsePrinter, Dialect))
        return R;
    }
    if (!Found.valid())
      return R;
    if (Found.empty()) {
      WithColor::error() << "no assembly instructions found.\n";
      return R;
    }

    std::unique_ptr<MCInstPrinter> IP(TheTarget.createMCInstPrinter(
        Triple(TripleName), Dialect, *MAI, *MCII, *MRI));
    if (!IP) {
      WithColor::error()
          << "unable to create instruction printer for target triple '"
          << TheTriple.normalize() << "' with assembly variant " << Dialect
          << ".\n";
      return R;
    }
    IP->setPrintImmHex(false);

    std::unique_ptr<mca::InstrPostProcess> IPP(
        TheTarget.createInstrPostProcess(*STI, *MCII));
    if (!IPP)
      IPP = std::make_unique<mca::InstrPostProcess>(*STI, *MCII);

    mca::InstrBuilder IB(*STI, *MCII, *MRI, MCIA.get());
    mca::Context MCA(*MRI, *STI);
    // llvm-mca's defaults: no micro-op queue, decoder throughput, dispatch
    // width, register file, load or store queue overrides; -noalias=true; no
    // bottleneck analysis.
    const mca::PipelineOptions PO(0, 0, 0, 0, 0, 0, /*NoAlias=*/true,
                                  /*ShouldEnableBottleneckAnalysis=*/false);

    int64_t FirstTotal = -1;
    for (const std::unique_ptr<Region> &Block : Found.all()) {
      if (Block->empty())
        continue;
      IB.clear();
      std::vector<std::unique_ptr<mca::Instruction>> Lowered;
      for (const MCInst &MCI : Block->instructions()) {
        Expected<std::unique_ptr<mca::Instruction>> Inst =
            IB.createInstruction(MCI);
        if (!Inst) {
          if (Error Other = handleErrors(
                  Inst.takeError(),
                  [&](const mca::InstructionError<MCInst> &IE) {
                    std::string Printed;
                    raw_string_ostream SS(Printed);
                    WithColor::error() << IE.Message << '\n';
                    IP->printInst(&IE.Inst, 0, "", *STI, SS);
                    SS.flush();
                    WithColor::note() << "instruction: " << Printed << '\n';
                  }))
            WithColor::error() << toString(std::move(Other));
          return R;
        }
        IPP->postProcessInstruction(Inst.get(), MCI);
        Lowered.push_back(std::move(Inst.get()));
      }

      mca::SourceMgr S(Lowered, Iterations);
      std::unique_ptr<mca::CustomBehaviour> CB(
          TheTarget.createCustomBehaviour(*STI, S, *MCII));
      if (!CB)
        CB = std::make_unique<mca::CustomBehaviour>(*STI, S, *MCII);
      std::unique_ptr<mca::Pipeline> P = MCA.createDefaultPipeline(PO, S, *CB);
      CycleCounter Counter;
      P->addEventListener(&Counter);
      Expected<unsigned> Cycles = P->run();
      if (!Cycles) {
        WithColor::error() << toString(Cycles.takeError());
        return R;
      }
      if (FirstTotal < 0)
        FirstTotal = static_cast<int64_t>(Counter.Cycles);
    }
    R.Code = Ok;
    R.Value = FirstTotal;
    return R;
  }

private:
  /// llvm-mca's parse of the input into regions (AsmCodeRegionGenerator):
  /// the lexer reads MASM integers too, the parse's own verdict is ignored
  /// (its diagnostics are printed; the instructions it did parse count).
  bool parse(Regions &Found, SourceMgr &SrcMgr, MCContext &Ctx,
             const MCAsmInfo &MAI, const MCSubtargetInfo &STI,
             const MCInstrInfo &MCII, MCInstPrinter &Printer,
             unsigned &Dialect) const {
    MCTargetOptions Opts;
    Opts.PreserveAsmComments = false;
    RegionStreamer Str(Ctx, Found);
    formatted_raw_ostream Discard(nulls());
    TheTarget.createAsmTargetStreamer(Str, Discard, &Printer,
                                      /*IsVerboseAsm=*/true);
    std::unique_ptr<MCAsmParser> Parser(createMCAsmParser(SrcMgr, Ctx, Str, MAI));
    MarkerReader Markers(Found);
    Parser->getLexer().setCommentConsumer(&Markers);
    Parser->getLexer().setLexMasmIntegers(true);
    std::unique_ptr<MCTargetAsmParser> TAP(
        TheTarget.createMCAsmParser(STI, *Parser, MCII, Opts));
    if (!TAP) {
      WithColor::error() << "This target does not support assembly parsing.\n";
      return false;
    }
    Parser->setTargetParser(*TAP);
    Parser->Run(false);
    Dialect = Parser->getAssemblerDialect();
    return true;
  }
};

const Target *lookup(const std::string &TripleName, const char *Tool) {
  std::string Message;
  Triple TheTriple(TripleName);
  const Target *T = TargetRegistry::lookupTarget("", TheTriple, Message);
  if (!T)
    errs() << Tool << ": " << Message << "\n";
  return T;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TRIPLE (requests on stdin)\n", argv[0]);
    return 2;
  }
  ProtocolIn = ::dup(0);
  ProtocolOut = ::dup(1);
  int Null = ::open("/dev/null", O_RDWR);
  std::FILE *Scratch = std::tmpfile();
  if (ProtocolIn < 0 || ProtocolOut < 0 || Null < 0 || !Scratch ||
      ::dup2(Null, 0) < 0 || ::dup2(Null, 1) < 0 ||
      ::dup2(::fileno(Scratch), 2) < 0) {
    std::perror("mcserver: cannot set up its file descriptors");
    return 2;
  }
  ::close(Null);
  install_fatal_error_handler(onFatalError, nullptr);

  InitializeAllTargetInfos();
  InitializeAllTargetMCs();
  InitializeAllAsmParsers();
  InitializeAllTargetMCAs();

  // llvm-mc normalizes the triple before looking it up; llvm-mca does not.
  const std::string Given = argv[1];
  const std::string Normalized = Triple::normalize(Given);
  const Target *ForMC = lookup(Normalized, "llvm-mc");
  const Target *ForMCA = lookup(Given, "llvm-mca");
  Reply Hello;
  if (!ForMC || !ForMCA) {
    Hello.Code = Failed;
    send(Hello, takeDiagnostics());
    return 1;
  }
  Hello.Data = LLVM_VERSION_STRING;
  send(Hello, "");
  const Assembler MC(*ForMC, Triple(Normalized).getTriple());
  const Scorer MCA(*ForMCA, Given);

  for (;;) {
    char Op;
    if (!readExactly(&Op, 1))
      return 0; // the client closed the pipe
    std::string Text, CPU;
    uint32_t Iterations = 0;
    bool Read = Op == 'a'   ? readString(Text)
                : Op == 'c' ? readU32(Iterations) && readString(CPU) &&
                                  readString(Text)
                            : false;
    if (!Read) {
      Reply Bad;
      Bad.Code = Fatal;
      send(Bad, "mcserver: malformed request\n");
      return 4;
    }
    clearDiagnostics();
    Reply R = Op == 'a' ? MC.run(Text) : MCA.run(Text, CPU, Iterations);
    send(R, takeDiagnostics());
  }
}
